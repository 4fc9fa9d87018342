//! The gateway's master key: `master.key` in the data folder (32 random bytes, mode 0600), which
//! seals every object's data key. It is checked against the database at every start, because
//! the two only work together (README, "Backup"):
//!
//! - a key is made only for a fresh database (no object stored, no key recorded): written to a
//!   temporary file, fsynced, renamed into place and the folder fsynced, then its check value
//!   recorded;
//! - a missing key file is refused once the database holds objects or a recorded key: a new key
//!   would make every object unreadable (seen only as failed reads, later);
//! - a key whose check value differs from the recorded one is refused (a wrong or damaged file);
//! - a key file that group or others may read is refused, with the chmod to run.

use std::io::Write;
use std::path::{Path, PathBuf};

use raidtorrent_codec::MasterKey;
use ring::rand::{SecureRandom, SystemRandom};

use super::{GatewayError, Meta};
use crate::registry::{unix_now, Db};

/// The key file's name in the data folder.
pub const MASTER_KEY_FILE: &str = "master.key";

/// The id objects name their key by (in every manifest's wrapped key).
const MASTER_KEY_ID: &str = "master-1";

/// Why the gateway will not start with the key it found.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the master key {path} is missing, but the database already holds objects sealed under \
         it. A new key would make every object unreadable, so none is made. Restore {path} from \
         the backup taken with this database (README, \"Backup\") and start again"
    )]
    Missing { path: PathBuf },
    #[error(
        "{path} is not the master key this database was written with (its check value differs). \
         Restore the master.key backed up together with this database, or point the data folder \
         (objects.data_dir, --data-dir) at the folder that holds it"
    )]
    Wrong { path: PathBuf },
    #[error(
        "the master key {path} may be read by other users (mode {mode:o}), and it decrypts every \
         object. Run `chmod 600 {path}` and start again"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} holds {len} bytes; a master key is 32")]
    Length { path: PathBuf, len: usize },
    #[error("no system randomness for a new master key")]
    Random,
    #[error("checking the master key against the database: {0}")]
    Db(#[from] GatewayError),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens the master key in `data_dir`, or makes one for a fresh database; see the module docs.
pub async fn open_master_key(data_dir: &Path, db: &Db) -> Result<MasterKey, KeyError> {
    create_private_dir(data_dir)?;
    let meta = Meta::new(db.clone());
    let path = data_dir.join(MASTER_KEY_FILE);
    let recorded = meta.master_key_check(MASTER_KEY_ID).await?;
    let key = match read_key(&path)? {
        Some(bytes) => MasterKey::new(MASTER_KEY_ID, &bytes).map_err(|_| KeyError::Length {
            path: path.clone(),
            len: bytes.len(),
        })?,
        None if recorded.is_some() || meta.has_objects().await? => {
            return Err(KeyError::Missing { path })
        }
        None => {
            tracing::info!(path = %path.display(), "a fresh database: made a new master key");
            create_key(&path)?
        }
    };
    let check = hex::encode(key.check_value());
    match recorded {
        Some(r) if r != check => return Err(KeyError::Wrong { path }),
        Some(_) => {}
        None => {
            meta.record_master_key(MASTER_KEY_ID, &check, unix_now())
                .await?
        }
    }
    Ok(key)
}

/// The key file's bytes; `None` when there is no file.
fn read_key(path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path)(e)),
    };
    refuse_exposed(path, &file)?;
    let mut bytes = Vec::with_capacity(32);
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io_at(path))?;
    Ok(Some(bytes))
}

#[cfg(unix)]
fn refuse_exposed(path: &Path, file: &std::fs::File) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata().map_err(io_at(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_exposed(_: &Path, _: &std::fs::File) -> Result<(), KeyError> {
    Ok(())
}

/// Makes a new key and puts it durably at `path`: a temporary file (0600) written and fsynced,
/// renamed into place, the folder fsynced.
fn create_key(path: &Path) -> Result<MasterKey, KeyError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Random)?;
    let tmp = path.with_extension("key.tmp");
    let mut file = private_file(&tmp).map_err(io_at(&tmp))?;
    file.write_all(&bytes).map_err(io_at(&tmp))?;
    file.sync_all().map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_at(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    Ok(MasterKey::new(MASTER_KEY_ID, &bytes).expect("32 bytes is a key"))
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    async fn db() -> Db {
        Registry::open_in_memory().await.unwrap().db().clone()
    }

    #[tokio::test]
    async fn a_fresh_database_gets_a_private_key_that_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = db().await;
        let made = open_master_key(dir.path(), &db).await.unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = open_master_key(dir.path(), &db).await.unwrap();
        assert_eq!(again.check_value(), made.check_value());
        let recorded = Meta::new(db).master_key_check(MASTER_KEY_ID).await.unwrap();
        assert_eq!(recorded, Some(hex::encode(made.check_value())));
    }

    #[tokio::test]
    async fn a_missing_or_wrong_key_is_refused_and_never_remade() {
        let dir = tempfile::tempdir().unwrap();
        let db = db().await;
        open_master_key(dir.path(), &db).await.unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let original = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = open_master_key(dir.path(), &db).await.unwrap_err();
        assert!(matches!(e, KeyError::Missing { .. }), "{e}");
        assert!(!path.exists(), "no key may be made for a used database");
        let mut wrong = original.clone();
        wrong[0] ^= 1;
        private_file(&path).unwrap().write_all(&wrong).unwrap();
        let e = open_master_key(dir.path(), &db).await.unwrap_err();
        assert!(matches!(e, KeyError::Wrong { .. }), "{e}");
        private_file(&path)
            .unwrap()
            .write_all(&original[..31])
            .unwrap();
        let e = open_master_key(dir.path(), &db).await.unwrap_err();
        assert!(matches!(e, KeyError::Length { len: 31, .. }), "{e}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_key_others_may_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = db().await;
        open_master_key(dir.path(), &db).await.unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = open_master_key(dir.path(), &db).await.unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
