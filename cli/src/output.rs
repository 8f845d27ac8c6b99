//! Tables for people, JSON for programs, all through [`write`].

/// Writes to stdout. When the reader has gone (`writ … | head`), the
/// process ends quietly with the status a shell gives SIGPIPE, as Unix
/// tools do, instead of panicking as `println!` would.
pub fn write(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("writ: cannot write to standard output: {err}");
        std::process::exit(1);
    }
}

pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// `key: value` lines for one record.
pub fn record(value: &serde_json::Value) {
    if let Some(object) = value.as_object() {
        for (key, field) in object {
            let shown = match field {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            };
            outln!("{key}: {shown}");
        }
    }
}
