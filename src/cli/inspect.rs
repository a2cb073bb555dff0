//! `artispace inspect [REPO[:TAG|@DIGEST]]`: what the store holds.

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::exit;
use super::output::{human_bytes, CommonArgs, Output};
use super::store::{ago, finish, format_millis, open_store, Failure};
use crate::oci::media_types as mt;
use crate::oci::{Reference, RepoName};
use crate::registry::{ManifestDescription, Registry, RegistryConfig};

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// A repository, or one manifest as REPO:TAG or REPO@DIGEST. Without it,
    /// every repository is listed.
    pub target: Option<String>,

    /// With a repository: list untagged manifests too.
    #[arg(long)]
    pub all: bool,

    /// With a manifest: print its exact bytes.
    #[arg(long)]
    pub raw: bool,
}

/// What the command line names.
enum Target {
    Everything,
    Repository(RepoName),
    Manifest(RepoName, Reference),
}

fn parse_target(text: Option<&str>) -> Result<Target, Failure> {
    let Some(text) = text else {
        return Ok(Target::Everything);
    };
    let bad = |e: crate::oci::NameError| {
        Failure::usage(format!("{text:?} is not a valid reference: {e}"))
    };
    if let Some((repo, digest)) = text.split_once('@') {
        return Ok(Target::Manifest(
            repo.parse().map_err(bad)?,
            Reference::Digest(
                digest
                    .parse()
                    .map_err(|e| bad(crate::oci::NameError::InvalidDigest(e)))?,
            ),
        ));
    }
    // A ':' after the last '/' starts a tag (names contain no ':').
    match text.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => Ok(Target::Manifest(
            repo.parse().map_err(bad)?,
            Reference::Tag(tag.parse().map_err(bad)?),
        )),
        _ => Ok(Target::Repository(text.parse().map_err(bad)?)),
    }
}

pub fn run(args: InspectArgs) -> i32 {
    finish(inspect(args))
}

fn inspect(args: InspectArgs) -> Result<i32, Failure> {
    let output = Output::new(&args.common);
    let target = parse_target(args.target.as_deref())?;
    let registry = open_store(&args.common, RegistryConfig::default())?;
    let runtime =
        super::output::runtime().map_err(|e| Failure::usage(format!("cannot start: {e}")))?;
    runtime.block_on(async {
        match target {
            Target::Everything => list_repositories(&registry, &output).await,
            Target::Repository(repo) => list_repository(&registry, &output, &repo, args.all).await,
            Target::Manifest(repo, reference) => {
                show_manifest(&registry, &output, &repo, &reference, args.raw).await
            }
        }
    })
}

async fn list_repositories(registry: &Registry, output: &Output) -> Result<i32, Failure> {
    let repositories = registry.repository_summaries().await?;
    if output.json {
        output.print_json(&json!({ "repositories": repositories }));
        return Ok(exit::SUCCESS);
    }
    let mut table = output.table(["repository", "tags", "manifests", "size", "last push"]);
    for r in &repositories {
        table.add_row(vec![
            r.name.clone(),
            r.tags.to_string(),
            r.manifests.to_string(),
            human_bytes(r.size),
            r.last_push.map(ago).unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{table}");
    Ok(exit::SUCCESS)
}

async fn list_repository(
    registry: &Registry,
    output: &Output,
    repo: &RepoName,
    all: bool,
) -> Result<i32, Failure> {
    let mut manifests = registry.repository_manifests(repo).await?;
    if !all {
        manifests.retain(|m| !m.tags.is_empty());
    }
    if output.json {
        output.print_json(&json!({ "repository": repo.as_str(), "manifests": manifests }));
        return Ok(exit::SUCCESS);
    }
    let mut table = output.table(["tag", "digest", "media type", "platforms", "size", "pushed"]);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in &manifests {
        let short = m.digest.hex().get(..12).unwrap_or_default().to_owned();
        let tags: Vec<String> = if m.tags.is_empty() {
            vec!["<none>".into()]
        } else {
            m.tags.clone()
        };
        for tag in tags {
            rows.push(vec![
                tag,
                short.clone(),
                m.media_type.clone(),
                m.platforms.join(", "),
                human_bytes(m.size),
                format_millis(m.created_at),
            ]);
        }
    }
    rows.sort();
    for row in rows {
        table.add_row(row);
    }
    println!("{table}");
    Ok(exit::SUCCESS)
}

async fn show_manifest(
    registry: &Registry,
    output: &Output,
    repo: &RepoName,
    reference: &Reference,
    raw: bool,
) -> Result<i32, Failure> {
    let description = registry.describe_manifest(repo, reference).await?;
    if raw {
        let mut stdout = std::io::stdout();
        stdout
            .write_all(&description.raw)
            .and_then(|()| stdout.flush())
            .map_err(|e| Failure::usage(format!("cannot write: {e}")))?;
        return Ok(exit::SUCCESS);
    }
    if output.json {
        output.print_json(&description);
        return Ok(exit::SUCCESS);
    }
    print_description(output, &description);
    Ok(exit::SUCCESS)
}

fn print_description(output: &Output, d: &ManifestDescription) {
    println!("{}@{}", d.repository, d.digest);
    println!("  media type:    {}", d.media_type);
    if let Some(artifact_type) = &d.artifact_type {
        println!("  artifact type: {artifact_type}");
    }
    println!("  size:          {} bytes", d.size);
    if !d.tags.is_empty() {
        println!("  tags:          {}", d.tags.join(", "));
    }
    if let Some(subject) = &d.subject {
        println!("  subject:       {subject}");
    }
    for (key, value) in &d.annotations {
        println!("  annotation:    {key}={value}");
    }
    if let Some(config) = &d.config {
        println!("config {} ({})", config.digest, config.media_type);
        if let Some(platform) = &config.platform {
            println!("  platform:   {platform}");
        }
        if let Some(created) = &config.created {
            println!("  created:    {created}");
        }
        if let Some(entrypoint) = &config.entrypoint {
            println!("  entrypoint: {entrypoint:?}");
        }
        if let Some(cmd) = &config.cmd {
            println!("  cmd:        {cmd:?}");
        }
        for (key, value) in &config.labels {
            println!("  label:      {key}={value}");
        }
    }
    if !d.layers.is_empty() {
        let mut table = output.table(["layer", "size", "media type"]);
        for layer in &d.layers {
            table.add_row(vec![
                layer.digest.clone(),
                human_bytes(layer.size),
                layer.media_type.clone(),
            ]);
        }
        println!("{table}");
    }
    // An index's entries are manifests, or blobs (a BuildKit cache's
    // layers and cache config), each kind in its own table.
    let (manifests, blobs): (Vec<_>, Vec<_>) = d
        .manifests
        .iter()
        .partition(|m| mt::is_manifest(&m.media_type));
    if !manifests.is_empty() {
        let mut table = output.table(["platform", "manifest", "size", "media type"]);
        for m in manifests {
            table.add_row(vec![
                m.platform.clone().unwrap_or_else(|| "-".into()),
                m.digest.clone(),
                human_bytes(m.size),
                m.media_type.clone(),
            ]);
        }
        println!("{table}");
    }
    if !blobs.is_empty() {
        let mut table = output.table(["blob", "size", "media type"]);
        for b in blobs {
            table.add_row(vec![
                b.digest.clone(),
                human_bytes(b.size),
                b.media_type.clone(),
            ]);
        }
        println!("{table}");
    }
    if !d.referrers.is_empty() {
        let mut table = output.table(["referrer", "artifact type", "size"]);
        for r in &d.referrers {
            table.add_row(vec![
                r.digest.to_string(),
                r.artifact_type.clone().unwrap_or_default(),
                human_bytes(r.size),
            ]);
        }
        println!("{table}");
    }
}
