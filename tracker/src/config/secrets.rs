//! Secrets read from files (`--api-key-file`, `--admin-token-file`), so they need not appear on a
//! command line, where every user of the machine can read them in the process list.

use std::path::Path;

use super::ConfigError;

/// The secrets in `path`, one per line; blank lines and lines starting with `#` are skipped. A
/// file other users may read is refused: it would give the secrets away as surely as a flag.
pub fn read_secrets(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
    refuse_world_readable(path)?;
    let secrets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError(format!("{} holds no secret", path.display())));
    }
    Ok(secrets)
}

/// The one secret in `path` (see [`read_secrets`]).
pub fn read_secret(path: &Path) -> Result<String, ConfigError> {
    let mut secrets = read_secrets(path)?;
    if secrets.len() > 1 {
        return Err(ConfigError(format!(
            "{} holds {} lines; it must hold one secret",
            path.display(),
            secrets.len()
        )));
    }
    Ok(secrets.remove(0))
}

#[cfg(unix)]
fn refuse_world_readable(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o004 != 0 {
        return Err(ConfigError(format!(
            "{} may be read by every user of this machine (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_world_readable(_: &Path) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(dir: &Path, text: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("secret");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn one_secret_a_line_comments_and_blanks_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = private(
            dir.path(),
            "# keys\nkey-one-0123456789\n\n  key-two-0123456789  \n",
        );
        assert_eq!(
            read_secrets(&path).unwrap(),
            ["key-one-0123456789", "key-two-0123456789"]
        );
        assert!(read_secret(&path).unwrap_err().0.contains("2 lines"));
        let one = private(dir.path(), "token-0123456789abcdef\n");
        assert_eq!(read_secret(&one).unwrap(), "token-0123456789abcdef");
        let empty = private(dir.path(), "# nothing\n");
        assert!(read_secrets(&empty).unwrap_err().0.contains("no secret"));
    }

    #[test]
    fn a_file_everyone_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = private(dir.path(), "key-one-0123456789\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secrets(&path).unwrap_err().0;
        assert!(e.contains("chmod 600"), "{e}");
    }
}
