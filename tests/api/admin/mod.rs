//! The admin commands (`inspect`, `gc`, `verify`) run as real processes
//! against the store of a running `artispace serve`, as an operator would.

mod gc;
mod inspect;
mod verify;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What an admin command printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (for `--json` runs).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `artispace <args> --root <root>` to completion.
pub async fn artispace(root: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_artispace"));
    command.args(args).arg("--root").arg(root);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("command task")
        .expect("run artispace");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The file holding blob `digest` ("sha256:…") under `root`.
pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("digest");
    root.join("blobs").join(algorithm).join(&hex[..2]).join(hex)
}

/// Makes a file look old, as a leftover from long ago would.
pub fn age_file(path: &Path) {
    let status = Command::new("touch")
        .args(["-d", "3 hours ago"])
        .arg(path)
        .status()
        .expect("touch");
    assert!(status.success());
}
