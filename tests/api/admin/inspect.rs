use super::artispace;
use crate::common::{TestServer, OCI_INDEX, OCI_MANIFEST};
use crate::manifests::buildkit_cache_index;

#[tokio::test]
async fn inspect_without_argument_lists_repositories() {
    let server = TestServer::start().await;
    server.push_image("team/app", "v1", 1).await;
    server.push_image("team/app", "v2", 2).await;
    server.push_image("other", "latest", 3).await;

    let run = artispace(server.root(), &["inspect", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let repositories = run.json()["repositories"].as_array().unwrap().clone();
    let names: Vec<&str> = repositories
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other", "team/app"]);
    assert_eq!(repositories[1]["tags"], 2);
    assert_eq!(repositories[1]["manifests"], 2);
    assert!(repositories[1]["size"].as_u64().unwrap() > 2048);

    let table = artispace(server.root(), &["inspect"]).await;
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("team/app") && table.stdout.contains("other"),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn inspect_repository_lists_tags_with_platforms() {
    let server = TestServer::start().await;
    let image = server.push_image("team/app", "v1", 1).await;
    server
        .push_manifest("team/app", &image.digest, OCI_MANIFEST, &image.manifest)
        .await;
    let untagged = crate::common::Image::new(9);
    server.push_blob("team/app", &untagged.config).await;
    server.push_blob("team/app", &untagged.layer).await;
    server
        .push_manifest(
            "team/app",
            &untagged.digest,
            OCI_MANIFEST,
            &untagged.manifest,
        )
        .await;

    let run = artispace(server.root(), &["inspect", "team/app", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifests = run.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(
        manifests.len(),
        1,
        "untagged manifests are hidden without --all"
    );
    assert_eq!(manifests[0]["tags"][0], "v1");
    assert_eq!(manifests[0]["digest"], image.digest.as_str());
    assert_eq!(manifests[0]["platforms"][0], "linux/amd64");

    let all = artispace(server.root(), &["inspect", "team/app", "--all", "--json"]).await;
    assert_eq!(all.json()["manifests"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn inspect_tag_describes_the_manifest_and_raw_prints_its_bytes() {
    let server = TestServer::start().await;
    let image = server.push_image("team/app", "v1", 7).await;

    let run = artispace(server.root(), &["inspect", "team/app:v1", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let d = run.json();
    assert_eq!(d["digest"], image.digest.as_str());
    assert_eq!(d["media_type"], OCI_MANIFEST);
    assert_eq!(d["layers"].as_array().unwrap().len(), 1);
    assert_eq!(d["config"]["platform"], "linux/amd64");
    assert_eq!(d["config"]["labels"]["seed"], "7");

    let raw = artispace(
        server.root(),
        &["inspect", &format!("team/app@{}", image.digest), "--raw"],
    )
    .await;
    assert_eq!(raw.code, 0);
    assert_eq!(raw.stdout.as_bytes(), image.manifest.as_slice());
}

#[tokio::test]
async fn inspect_unknown_repository_or_tag_exits_1_with_one_line() {
    let server = TestServer::start().await;
    server.push_image("team/app", "v1", 1).await;
    for target in ["nobody/here", "team/app:missing"] {
        let run = artispace(server.root(), &["inspect", target]).await;
        assert_eq!(run.code, 1, "{target}: {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test]
async fn admin_commands_on_a_missing_store_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    for command in [&["inspect"][..], &["gc"], &["verify"]] {
        let run = artispace(empty.path(), command).await;
        assert_eq!(run.code, 2, "{command:?}: {}", run.stderr);
        assert!(run.stderr.contains("no ArtiSpace store"), "{}", run.stderr);
    }
    assert!(
        !empty.path().join("artispace.db").exists(),
        "an admin command must not create a store"
    );
}

#[tokio::test]
async fn inspect_lists_the_blobs_of_a_buildkit_cache_apart_from_manifests() {
    let server = TestServer::start().await;
    let index = buildkit_cache_index(&server, "app", OCI_INDEX, None).await;
    server
        .push_manifest("app", "cache", OCI_INDEX, &index)
        .await;
    let run = artispace(server.root(), &["inspect", "app:cache"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let header_of = |digest: &str| {
        let mut header = None;
        for line in run.stdout.lines() {
            if line.contains(" media type ") {
                header = Some(line.to_owned());
            }
            if line.contains(digest) {
                return header.clone();
            }
        }
        None
    };
    let parsed: serde_json::Value = serde_json::from_slice(&index).unwrap();
    for entry in parsed["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap();
        let header =
            header_of(digest).unwrap_or_else(|| panic!("{digest} not listed:\n{}", run.stdout));
        assert!(
            header.contains("blob") && !header.contains("manifest"),
            "{digest} listed under {header:?}:\n{}",
            run.stdout
        );
    }
}
