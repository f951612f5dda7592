//! The README's first code block, pasted into a new crate with the dependency lines the
//! README gives, compiles and prints its miss, hit and invalidation.
//!
//! The crate is built where a user's would be: outside this workspace's members, resolving
//! only what the README's `[dependencies]` lines ask for (the facade by path, in place of
//! its version), offline from the packages this workspace already fetched.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The text of the first fenced block of `language` in `markdown`.
fn first_block<'a>(markdown: &'a str, language: &str) -> &'a str {
    let fence = format!("```{language}\n");
    let start = markdown
        .find(&fence)
        .unwrap_or_else(|| panic!("the README has a {language} block"))
        + fence.len();
    let end = markdown[start..]
        .find("```")
        .unwrap_or_else(|| panic!("the {language} block is closed"));
    &markdown[start..start + end]
}

#[test]
fn the_first_readme_block_builds_in_a_new_crate_and_shows_the_cache_at_work() {
    // It uses `mem://`, not the server: scripts/test runs it on its first pass only.
    if std::env::var_os("REDIS_CACHED_RERUN").is_some() {
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"SKIPPED the_first_readme_block_builds_in_a_new_crate_and_shows_the_cache_at_work: \
              a rerun on another server (REDIS_CACHED_RERUN); run on the first pass\n",
        );
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(workspace.join("README.md")).expect("README.md");
    let dependencies = first_block(&readme, "toml");
    let code = first_block(&readme, "rust");
    assert!(
        dependencies.contains("redis-cached = \"0.1\""),
        "the README's dependency lines name the crate:\n{dependencies}"
    );
    let dependencies = dependencies.replace(
        "redis-cached = \"0.1\"",
        &format!(
            "redis-cached = {{ path = {:?} }}",
            workspace.display().to_string()
        ),
    );

    let dir: PathBuf = workspace.join("target").join("readme-crate");
    std::fs::create_dir_all(dir.join("src")).expect("a directory for the crate");
    let manifest = format!(
        "[package]\nname = \"readme-check\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
         publish = false\n\n{dependencies}\n# Not a member of the workspace around it.\n[workspace]\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), code).expect("main.rs");
    // The versions this workspace has already fetched, so that the build needs no network.
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");

    let output = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README's block failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "first call:  Some(Miss)",
        "second call: Some(Hit)",
        "after write: Some(Miss)",
    ] {
        assert!(
            stdout.contains(line),
            "the output shows `{line}`:\n{stdout}"
        );
    }
    assert_eq!(
        stdout
            .matches("(reading user 42 from the database)")
            .count(),
        2,
        "the body ran for the miss and after the write, not for the hit:\n{stdout}"
    );
}
