use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use serde_json::Value;

use super::{age_file, artispace, blob_path};
use crate::common::{random_bytes, sha256_digest, Image, TestServer};

/// The problems of a `verify --json` report of the given kind.
fn problems<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == kind)
        .collect()
}

/// `repository:tag` for everything a problem says it breaks.
fn affected(problem: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for manifest in problem["affects"].as_array().unwrap() {
        for tag in manifest["tags"].as_array().unwrap() {
            names.push(format!(
                "{}:{}",
                manifest["repository"].as_str().unwrap(),
                tag.as_str().unwrap()
            ));
        }
    }
    names.sort();
    names
}

async fn store_with_two_repositories() -> (TestServer, Image) {
    let server = TestServer::start().await;
    let shared = server.push_image("team/a", "v1", 1).await;
    // The same image in a second repository: one blob file serves both.
    server.push_image("team/b", "stable", 1).await;
    server.push_image("team/b", "other", 2).await;
    (server, shared)
}

#[tokio::test]
async fn verify_on_a_clean_store_exits_0() {
    let (server, _) = store_with_two_repositories().await;
    let run = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let report = run.json();
    assert_eq!(report["clean"], true);
    assert_eq!(report["checked"]["blobs"], 4);
    assert_eq!(report["checked"]["manifests"], 3);
}

#[tokio::test]
async fn flipped_byte_is_reported_with_every_repository_it_breaks() {
    let (server, shared) = store_with_two_repositories().await;
    let layer = sha256_digest(&shared.layer);
    let mut file = OpenOptions::new()
        .write(true)
        .open(blob_path(server.root(), &layer))
        .unwrap();
    file.seek(SeekFrom::Start(10)).unwrap();
    file.write_all(&[shared.layer[10] ^ 0xff]).unwrap();
    drop(file);

    let run = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(run.code, 1);
    let report = run.json();
    let corrupt = problems(&report, "blob_corrupt");
    assert_eq!(corrupt.len(), 1, "{report}");
    assert_eq!(corrupt[0]["subject"], layer.as_str());
    assert_eq!(affected(corrupt[0]), ["team/a:v1", "team/b:stable"]);

    let text = artispace(server.root(), &["verify"]).await;
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("blob_corrupt") && text.stdout.contains("team/b"),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn truncated_and_deleted_files_are_reported() {
    let (server, shared) = store_with_two_repositories().await;
    let config = sha256_digest(&shared.config);
    let other = Image::new(2);
    let other_layer = sha256_digest(&other.layer);
    OpenOptions::new()
        .write(true)
        .open(blob_path(server.root(), &config))
        .unwrap()
        .set_len(3)
        .unwrap();
    std::fs::remove_file(blob_path(server.root(), &other_layer)).unwrap();

    let report = artispace(server.root(), &["verify", "--json"]).await.json();
    let truncated = problems(&report, "blob_size_mismatch");
    assert_eq!(truncated.len(), 1, "{report}");
    assert_eq!(affected(truncated[0]), ["team/a:v1", "team/b:stable"]);
    let missing = problems(&report, "blob_missing");
    assert_eq!(missing.len(), 1, "{report}");
    assert_eq!(missing[0]["subject"], other_layer.as_str());
    assert_eq!(affected(missing[0]), ["team/b:other"]);
}

#[tokio::test]
async fn extra_file_is_reported_and_repair_removes_it() {
    let (server, _) = store_with_two_repositories().await;
    let data = random_bytes(3, 100);
    let extra = blob_path(server.root(), &sha256_digest(&data));
    std::fs::create_dir_all(extra.parent().unwrap()).unwrap();
    std::fs::write(&extra, &data).unwrap();
    age_file(&extra);

    let report = artispace(server.root(), &["verify", "--json"]).await.json();
    assert_eq!(problems(&report, "orphan_file").len(), 1, "{report}");

    let repaired = artispace(server.root(), &["verify", "--repair", "--json"]).await;
    assert_eq!(
        repaired.code, 1,
        "problems found are reported even when repaired"
    );
    assert_eq!(
        problems(&repaired.json(), "orphan_file")[0]["repaired"],
        true
    );
    assert!(!extra.exists());
    assert_eq!(artispace(server.root(), &["verify"]).await.code, 0);
}

#[tokio::test]
async fn tampered_manifest_is_reported_and_not_repairable() {
    let (server, shared) = store_with_two_repositories().await;
    let db = rusqlite::Connection::open(server.root().join("artispace.db")).unwrap();
    db.execute(
        "UPDATE manifests SET content = CAST('{\"tampered\":true}' AS BLOB)
         WHERE digest = ?1 AND repository_id = (SELECT id FROM repositories WHERE name = 'team/a')",
        [&shared.digest],
    )
    .unwrap();
    drop(db);

    let run = artispace(server.root(), &["verify", "--repair", "--json"]).await;
    assert_eq!(run.code, 1);
    let report = run.json();
    let tampered = problems(&report, "manifest_corrupt");
    assert_eq!(tampered.len(), 1, "{report}");
    assert_eq!(affected(tampered[0]), ["team/a:v1"]);
    assert_eq!(tampered[0]["repaired"], false);
}

#[tokio::test]
async fn repair_marks_a_corrupt_blob_so_the_next_push_replaces_it() {
    let (server, shared) = store_with_two_repositories().await;
    let layer = sha256_digest(&shared.layer);
    std::fs::write(blob_path(server.root(), &layer), b"garbage").unwrap();

    let run = artispace(server.root(), &["verify", "--repair", "--json"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        problems(&run.json(), "blob_size_mismatch")[0]["repaired"],
        true
    );
    // The registry no longer claims to have it, so a client pushes it again.
    assert_eq!(
        server
            .head(&format!("/v2/team/a/blobs/{layer}"))
            .await
            .status(),
        404
    );
    server.push_blob("team/a", &shared.layer).await;
    let pulled = server.get(&format!("/v2/team/b/blobs/{layer}")).await;
    assert_eq!(pulled.bytes().await.unwrap(), shared.layer);
    let after = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(after.code, 0, "{}", after.stdout);
}

#[tokio::test]
async fn interrupted_gc_leftovers_are_reported_and_repaired() {
    let (server, _) = store_with_two_repositories().await;
    let loose = server.push_blob("team/a", b"collected when gc died").await;
    let db = rusqlite::Connection::open(server.root().join("artispace.db")).unwrap();
    db.execute("DELETE FROM repository_blobs WHERE digest = ?1", [&loose])
        .unwrap();
    db.execute(
        "UPDATE blobs SET state = 'deleting' WHERE digest = ?1",
        [&loose],
    )
    .unwrap();
    drop(db);

    let report = artispace(server.root(), &["verify", "--repair", "--json"])
        .await
        .json();
    let leftovers = problems(&report, "interrupted_deletion");
    assert_eq!(leftovers.len(), 1, "{report}");
    assert_eq!(leftovers[0]["repaired"], true);
    assert!(!blob_path(server.root(), &loose).exists());
    assert_eq!(artispace(server.root(), &["verify"]).await.code, 0);
}
