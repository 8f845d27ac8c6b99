//! The docs name files that exist. Every relative Markdown link, and every
//! code span that looks like a source path (`infra/store/src/change.rs`,
//! `views/mod.rs`, `committer.rs`), in every tracked `.md` file outside the
//! fixtures must resolve: from the repository's root, from the Markdown
//! file's folder, as the tail of a tracked path, or, for a bare file name,
//! as some tracked file's name. Generated paths (`target/…`) are not source
//! paths and are not checked. A file not yet added to git counts as
//! tracked; an ignored one does not.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

const SOURCE_EXTENSIONS: &[&str] = &["rs", "md", "sql", "toml", "sh", "lua", "yml", "yaml"];

struct Tree {
    files: BTreeSet<String>,
    folders: BTreeSet<String>,
}

impl Tree {
    fn tracked(root: &Path) -> Self {
        let listing = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root)
            .output()
            .unwrap_or_else(|err| panic!("git ls-files: {err}"));
        assert!(listing.status.success(), "git ls-files failed");
        let files: BTreeSet<String> = String::from_utf8_lossy(&listing.stdout)
            .split('\0')
            .filter(|path| !path.is_empty())
            .map(str::to_owned)
            .collect();
        let folders = files
            .iter()
            .flat_map(|file| {
                Path::new(file)
                    .ancestors()
                    .skip(1)
                    .map(|folder| folder.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|folder| !folder.is_empty())
            .collect();
        Self { files, folders }
    }

    fn has(&self, path: &str) -> bool {
        self.files.contains(path) || self.folders.contains(path)
    }

    fn resolves(&self, markdown: &str, target: &str) -> bool {
        let beside = normalise(&Path::new(markdown).with_file_name("").join(target));
        if self.has(target) || self.has(&beside) {
            return true;
        }
        if target.contains('/') {
            let tail = format!("/{target}");
            self.files.iter().any(|file| file.ends_with(&tail))
        } else {
            self.files
                .iter()
                .any(|file| Path::new(file).file_name().and_then(|n| n.to_str()) == Some(target))
        }
    }
}

/// `a/./b/../c` as `a/c`, without touching the filesystem.
fn normalise(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// Relative link targets: `[text](target)`, without any `#fragment`.
fn link_targets(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')')?];
            let target = target.split('#').next().unwrap_or_default();
            let external = target.contains(':') || target.is_empty() || target.contains(' ');
            (!external).then(|| target.to_owned())
        })
        .collect()
}

/// Code spans that look like a path to a source file.
fn source_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-/".contains(c);
            let extension = span
                .rsplit_once('.')
                .map(|(_, ext)| ext)
                .unwrap_or_default();
            !span.is_empty()
                && span.chars().all(allowed)
                && SOURCE_EXTENSIONS.contains(&extension)
                && !span.starts_with(['/', '.'])
                && !span.starts_with("target/")
                && !span.contains("..")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_path_and_link_in_the_docs_exists() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let tree = Tree::tracked(&root);
    let markdown: Vec<&String> = tree
        .files
        .iter()
        .filter(|file| file.ends_with(".md") && !file.starts_with("tests/fixtures/"))
        .collect();
    assert!(markdown.len() > 10, "found only {markdown:?}");
    let mut missing = Vec::new();
    for file in markdown {
        let text =
            std::fs::read_to_string(root.join(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
        for target in link_targets(&text).into_iter().chain(source_paths(&text)) {
            if !tree.resolves(file, &target) {
                missing.push(format!("{file}: {target}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs name files that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_checks_find_what_they_look_for() {
    let text = "see [ADR](adr/0001-x.md#why), [site](https://x.example), \
                `infra/store/src/change.rs`, `change.rs`, `target/release/writ`, \
                `application/x-www-form-urlencoded`, `.sql`";
    assert_eq!(link_targets(text), ["adr/0001-x.md"]);
    assert_eq!(
        source_paths(text),
        ["infra/store/src/change.rs", "change.rs"]
    );
    let tree = Tree {
        files: ["docs/adr/0001-x.md", "infra/store/src/change.rs"]
            .map(str::to_owned)
            .into(),
        folders: [
            "docs",
            "docs/adr",
            "infra",
            "infra/store",
            "infra/store/src",
        ]
        .map(str::to_owned)
        .into(),
    };
    assert!(tree.resolves("docs/architecture.md", "adr/0001-x.md"));
    assert!(tree.resolves("README.md", "infra/store/src/change.rs"));
    assert!(tree.resolves("docs/architecture.md", "src/change.rs"));
    assert!(tree.resolves("docs/architecture.md", "change.rs"));
    assert!(!tree.resolves("docs/architecture.md", "infra/src/store/change.rs"));
    assert!(!tree.resolves("docs/architecture.md", "adr/0002-y.md"));
    assert!(!tree.resolves("docs/architecture.md", "missing.rs"));
}
