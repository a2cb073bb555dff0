//! Small images (config blob + layer blob + OCI manifest) and the scenario
//! that pushes many of them.

use std::sync::Arc;

use anyhow::Result;
use reqwest::Client;
use serde_json::json;

use super::{parallel, Ctx};
use crate::content::{seed_of, sha256_digest, Prng};
use crate::registry::{self, OCI_MANIFEST};
use crate::report::Work;

const SMALL_REPO: &str = "bench/small";

/// One image, all of it in memory (a few KiB).
pub struct SmallImage {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

impl SmallImage {
    /// A distinct image for each `name`: random layer, config naming it.
    pub fn new(name: &str, layer_len: usize) -> SmallImage {
        let layer = Prng::new(seed_of(name)).bytes(layer_len);
        let layer_digest = sha256_digest(&layer);
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": { "org.artispace.bench": name } },
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        });
        let config = serde_json::to_vec(&config).expect("serialisable");
        let config_digest = sha256_digest(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        });
        let manifest = serde_json::to_vec(&manifest).expect("serialisable");
        SmallImage {
            manifest_digest: sha256_digest(&manifest),
            config,
            config_digest,
            layer,
            layer_digest,
            manifest,
        }
    }

    /// Pushes both blobs (POST + PUT each) and the manifest under `tag`.
    pub async fn push(&self, client: &Client, base: &str, repo: &str, tag: &str) -> Result<()> {
        self.push_blobs(client, base, repo).await?;
        registry::put_manifest(
            client,
            base,
            repo,
            tag,
            &self.manifest,
            &self.manifest_digest,
        )
        .await
    }

    pub async fn push_blobs(&self, client: &Client, base: &str, repo: &str) -> Result<()> {
        registry::push_small_blob(client, base, repo, &self.config, &self.config_digest).await?;
        registry::push_small_blob(client, base, repo, &self.layer, &self.layer_digest).await
    }
}

/// Pushes `small_images` distinct images by tag into one repository, with
/// `push_concurrency` images in flight; one latency per image.
pub async fn push_small_images(ctx: &Ctx) -> Result<Work> {
    let plan = &ctx.plan;
    let round = ctx.round;
    let images: Vec<SmallImage> = tokio::task::block_in_place(|| {
        (0..plan.small_images)
            .map(|i| SmallImage::new(&format!("small-r{round}-{i}"), plan.small_layer))
            .collect()
    });
    let bytes = images
        .iter()
        .map(|i| (i.config.len() + i.layer.len() + i.manifest.len()) as u64)
        .sum();
    let images = Arc::new(images);
    let c = ctx.clone();
    let latencies = parallel(plan.push_concurrency, images.len(), move |i| {
        let (c, images) = (c.clone(), images.clone());
        async move {
            images[i]
                .push(&c.client, &c.base, SMALL_REPO, &format!("r{round}-i{i:06}"))
                .await
        }
    })
    .await?;
    Ok(Work {
        ops: plan.small_images as u64,
        unit: "images",
        bytes,
        latencies,
        ..Work::default()
    })
}
