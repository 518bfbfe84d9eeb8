//! Files the user picks: listing an `<input type="file">`'s selection and reading a main file
//! with an optional companion, shared by the data card and the adapter import.

use yew::{Event, TargetCast};

/// The files picked in the input that fired `e` (empty when there is none).
pub fn picked(e: &Event) -> Vec<web_sys::File> {
    e.target_dyn_into::<web_sys::HtmlInputElement>()
        .and_then(|input| input.files())
        .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
        .unwrap_or_default()
}

/// The bytes of `file`, or an error naming it.
pub async fn read(file: web_sys::File) -> Result<Vec<u8>, String> {
    let name = file.name();
    gloo_file::futures::read_as_bytes(&gloo_file::File::from(file))
        .await
        .map_err(|e| format!("Cannot read {name}: {e}"))
}

/// The bytes of `main` and, when given, of `companion`.
pub async fn read_pair(
    main: web_sys::File,
    companion: Option<web_sys::File>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let main = read(main).await?;
    let companion = match companion {
        Some(f) => Some(read(f).await?),
        None => None,
    };
    Ok((main, companion))
}
