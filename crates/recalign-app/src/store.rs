//! The worker's storage: the browser's origin-private file system (OPFS), so models, adapters,
//! runs and checkpoints survive a reload and never leave the device.
//!
//! OPFS rather than IndexedDB because everything stored is a file (GGUF, safetensors, JSON) of up
//! to a few hundred MB, and OPFS writes them as files: `createWritable` writes to a swap file and
//! replaces the old contents only on `close`, so a write that fails (a full quota) leaves what
//! was stored before intact. The API is five calls, used here through `web-sys`; the crates that
//! wrap it add little and are less kept.
//!
//! Layout: `models/<file name>`, `adapters/index.json` + `adapters/<id>.safetensors`,
//! `runs/<id>.json`, `checkpoint/run.json` + `checkpoint/state.safetensors`.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemHandle, FileSystemHandleKind, FileSystemRemoveOptions,
    FileSystemWritableFileStream, StorageManager,
};

/// The store's top-level folders.
pub const MODELS: &str = "models";
/// Adapters and their index.
pub const ADAPTERS: &str = "adapters";
/// Finished (or cancelled) training runs.
pub const RUNS: &str = "runs";
/// The running training's latest checkpoint.
pub const CHECKPOINT: &str = "checkpoint";

/// The origin-private file system's root.
pub struct Store {
    root: FileSystemDirectoryHandle,
}

fn storage_manager() -> Result<StorageManager, String> {
    let global = js_sys::global();
    let navigator = Reflect::get(&global, &JsValue::from_str("navigator"))
        .ok()
        .filter(|n| !n.is_undefined())
        .ok_or("this context has no navigator")?;
    Reflect::get(&navigator, &JsValue::from_str("storage"))
        .ok()
        .filter(|s| !s.is_undefined())
        .and_then(|s| s.dyn_into::<StorageManager>().ok())
        .ok_or_else(|| "this browser offers no storage here (navigator.storage)".to_string())
}

/// Says what a storage error means; a full quota gets advice.
pub fn describe(e: JsValue) -> String {
    let name = Reflect::get(&e, &JsValue::from_str("name"))
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    let message = Reflect::get(&e, &JsValue::from_str("message"))
        .ok()
        .and_then(|n| n.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    if name == "QuotaExceededError" {
        format!(
            "this site's storage quota is full ({message}). Nothing stored before was lost. \
             Free space with \u{201c}Clear stored data\u{201d} in the Model card, or allow this \
             site more storage in the browser's settings"
        )
    } else if name.is_empty() {
        message
    } else {
        format!("{name}: {message}")
    }
}

async fn call(promise: js_sys::Promise) -> Result<JsValue, String> {
    JsFuture::from(promise).await.map_err(describe)
}

impl Store {
    /// Opens this origin's file system.
    pub async fn open() -> Result<Self, String> {
        let root = call(storage_manager()?.get_directory())
            .await?
            .dyn_into::<FileSystemDirectoryHandle>()
            .map_err(|_| "the storage root is not a folder".to_string())?;
        Ok(Self { root })
    }

    async fn folder(
        &self,
        name: &str,
        create: bool,
    ) -> Result<Option<FileSystemDirectoryHandle>, String> {
        let options = FileSystemGetDirectoryOptions::new();
        options.set_create(create);
        match JsFuture::from(self.root.get_directory_handle_with_options(name, &options)).await {
            Ok(d) => Ok(d.dyn_into().ok()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(describe(e)),
        }
    }

    async fn file(&self, dir: &str, name: &str) -> Result<Option<FileSystemFileHandle>, String> {
        let Some(folder) = self.folder(dir, false).await? else {
            return Ok(None);
        };
        match JsFuture::from(folder.get_file_handle(name)).await {
            Ok(f) => Ok(f.dyn_into().ok()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(describe(e)),
        }
    }

    /// The bytes of `dir/name`, `None` when it is not stored.
    pub async fn read(&self, dir: &str, name: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(handle) = self.file(dir, name).await? else {
            return Ok(None);
        };
        let file: web_sys::File = call(handle.get_file()).await?.unchecked_into();
        let buffer = call(file.array_buffer()).await?;
        Ok(Some(Uint8Array::new(&buffer).to_vec()))
    }

    /// The size of `dir/name` in bytes, `None` when it is not stored.
    pub async fn size(&self, dir: &str, name: &str) -> Result<Option<u64>, String> {
        let Some(handle) = self.file(dir, name).await? else {
            return Ok(None);
        };
        let file: web_sys::File = call(handle.get_file()).await?.unchecked_into();
        Ok(Some(file.size() as u64))
    }

    /// Writes `dir/name` whole. On failure the previous contents stay (OPFS commits on close),
    /// and a file this call created is removed again.
    pub async fn write(&self, dir: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
        let folder = self
            .folder(dir, true)
            .await?
            .ok_or_else(|| format!("cannot create the folder {dir}"))?;
        let existed = self.file(dir, name).await?.is_some();
        let options = FileSystemGetFileOptions::new();
        options.set_create(true);
        let handle: FileSystemFileHandle =
            call(folder.get_file_handle_with_options(name, &options))
                .await?
                .unchecked_into();
        let stream: FileSystemWritableFileStream =
            call(handle.create_writable()).await?.unchecked_into();
        // A copy outside wasm memory: in the multi-threaded build that memory is shared, and the
        // browser refuses a view of shared memory here (every write failed).
        let copy = Uint8Array::from(bytes);
        let written = async {
            call(stream.write_with_js_u8_array(&copy).map_err(describe)?).await?;
            call(stream.close()).await.map(|_| ())
        }
        .await;
        if let Err(e) = written {
            let _ = JsFuture::from(stream.abort()).await;
            if !existed {
                let _ = JsFuture::from(folder.remove_entry(name)).await;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Removes `dir/name` (nothing to do when it is not stored).
    pub async fn remove(&self, dir: &str, name: &str) -> Result<(), String> {
        let Some(folder) = self.folder(dir, false).await? else {
            return Ok(());
        };
        match JsFuture::from(folder.remove_entry(name)).await {
            Err(e) if !is_not_found(&e) => Err(describe(e)),
            _ => Ok(()),
        }
    }

    /// Files in `dir` with their sizes, sorted by name.
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, u64)>, String> {
        let Some(folder) = self.folder(dir, false).await? else {
            return Ok(Vec::new());
        };
        let entries = folder.values();
        let mut out = Vec::new();
        loop {
            let next = call(entries.next().map_err(describe)?).await?;
            if Reflect::get(&next, &JsValue::from_str("done"))
                .ok()
                .and_then(|d| d.as_bool())
                .unwrap_or(true)
            {
                break;
            }
            let handle: FileSystemHandle = Reflect::get(&next, &JsValue::from_str("value"))
                .map_err(describe)?
                .unchecked_into();
            if handle.kind() == FileSystemHandleKind::File {
                let file: web_sys::File =
                    call(handle.unchecked_into::<FileSystemFileHandle>().get_file())
                        .await?
                        .unchecked_into();
                out.push((file.name(), file.size() as u64));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes everything this page stored.
    pub async fn clear(&self) -> Result<(), String> {
        let options = FileSystemRemoveOptions::new();
        options.set_recursive(true);
        for dir in [MODELS, ADAPTERS, RUNS, CHECKPOINT] {
            match JsFuture::from(self.root.remove_entry_with_options(dir, &options)).await {
                Err(e) if !is_not_found(&e) => return Err(describe(e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The browser's estimate of this origin's usage and quota in bytes.
pub async fn estimate() -> Option<(u64, u64)> {
    let estimate: web_sys::StorageEstimate =
        JsFuture::from(storage_manager().ok()?.estimate().ok()?)
            .await
            .ok()?
            .unchecked_into();
    Some((
        estimate.get_usage().unwrap_or(0.0) as u64,
        estimate.get_quota().unwrap_or(0.0) as u64,
    ))
}

fn is_not_found(e: &JsValue) -> bool {
    Reflect::get(e, &JsValue::from_str("name"))
        .ok()
        .and_then(|n| n.as_string())
        .is_some_and(|n| n == "NotFoundError" || n == "TypeMismatchError")
}
