//! What one client can make the gateway spend: uploads and reads served at once (others wait
//! their turn briefly, then get 503 SlowDown), and the disk that staged shards and fetched
//! shards take, reserved before they are written and checked against the data disk's free space.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::GatewayConfig;
use super::GatewayError;

/// Bytes of the data disk never promised to staging or reads: the database and the logs live
/// there too.
const DISK_RESERVE: u64 = 256 << 20;

/// Read memory is handed out in units of this many bytes.
const MEMORY_UNIT: u64 = 64 << 10;

/// Slots for uploads and reads, the memory reads hold, and the data disk's space.
pub(super) struct Admission {
    puts: Slots,
    gets: Slots,
    /// Units of read memory; never closed.
    memory: Arc<Semaphore>,
    memory_units: u32,
    wait: Duration,
    space: Arc<Space>,
}

struct Slots {
    what: &'static str,
    max: usize,
    sem: Arc<Semaphore>,
    wait: Duration,
}

/// An upload's or a read's turn; dropping it lets the next in.
pub(super) type Turn = OwnedSemaphorePermit;

struct Space {
    dir: PathBuf,
    promised: Mutex<u64>,
}

/// Disk space promised to one operation; given back when dropped.
pub(super) struct Reserved {
    space: Arc<Space>,
    bytes: u64,
}

impl Admission {
    pub(super) fn new(config: &GatewayConfig) -> Self {
        let slots = |what, max: usize| Slots {
            what,
            max,
            sem: Arc::new(Semaphore::new(max)),
            wait: config.queue_timeout,
        };
        let memory_units = (config.read_memory / MEMORY_UNIT).clamp(1, u64::from(u32::MAX)) as u32;
        Admission {
            puts: slots("uploads", config.max_puts),
            gets: slots("reads", config.max_gets),
            memory: Arc::new(Semaphore::new(memory_units as usize)),
            memory_units,
            wait: config.queue_timeout,
            space: Arc::new(Space {
                dir: config.data_dir.clone(),
                promised: Mutex::new(0),
            }),
        }
    }

    /// Waits for an upload's turn.
    pub(super) async fn put(&self) -> Result<Turn, GatewayError> {
        self.puts.take().await
    }

    /// Waits for a read's turn.
    pub(super) async fn get(&self) -> Result<Turn, GatewayError> {
        self.gets.take().await
    }

    /// Waits for `bytes` of read memory (all of it, for a read that wants more than there is).
    pub(super) async fn read_memory(&self, bytes: u64) -> Result<Turn, GatewayError> {
        let units = bytes
            .div_ceil(MEMORY_UNIT)
            .clamp(1, u64::from(self.memory_units)) as u32;
        let memory = self.memory.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, memory).await {
            Ok(Ok(held)) => Ok(held),
            _ => Err(GatewayError::Busy(format!(
                "the memory for reads ({} MiB) is taken by other reads; retry shortly",
                (u64::from(self.memory_units) * MEMORY_UNIT) >> 20
            ))),
        }
    }

    /// Bytes of the data disk not yet promised (free space less the reserve).
    #[cfg(test)]
    fn available(&self) -> Result<u64, GatewayError> {
        let free = free_bytes(&self.space.dir)?;
        let promised = *self.space.lock();
        Ok(free.saturating_sub(DISK_RESERVE).saturating_sub(promised))
    }

    /// Promises `bytes` of the data disk, or says how much there is.
    pub(super) fn reserve(&self, bytes: u64) -> Result<Reserved, GatewayError> {
        let free = free_bytes(&self.space.dir)?.saturating_sub(DISK_RESERVE);
        let mut promised = self.space.lock();
        let available = free.saturating_sub(*promised);
        if bytes > available {
            return Err(GatewayError::InsufficientStorage(format!(
                "{bytes} bytes of staging space needed, {available} available on the gateway's \
                 data disk"
            )));
        }
        *promised += bytes;
        Ok(Reserved {
            space: self.space.clone(),
            bytes,
        })
    }
}

impl Slots {
    async fn take(&self) -> Result<Turn, GatewayError> {
        let turn = tokio::time::timeout(self.wait, self.sem.clone().acquire_owned()).await;
        match turn {
            Ok(Ok(t)) => Ok(t),
            // The semaphore is never closed; a timeout means every slot stayed busy.
            _ => Err(GatewayError::Busy(format!(
                "the gateway is serving its maximum of {} {} at once; retry shortly",
                self.max, self.what
            ))),
        }
    }
}

impl Space {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.promised.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        *self.space.lock() -= self.bytes;
    }
}

/// Free bytes for an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Result<u64, GatewayError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| GatewayError::Internal("the data directory's path holds a NUL".into()))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(GatewayError::Internal(format!(
            "free space of {}: {e}",
            dir.display()
        )));
    }
    // The field types differ between platforms.
    #[allow(clippy::useless_conversion)]
    let (avail, size) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    Ok(avail.saturating_mul(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(dir: &std::path::Path) -> Admission {
        Admission::new(&GatewayConfig {
            data_dir: dir.to_owned(),
            max_puts: 1,
            max_gets: 2,
            queue_timeout: Duration::from_millis(50),
            ..GatewayConfig::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn turns_are_capped_and_a_wait_ends_in_slow_down() {
        let dir = tempfile::tempdir().unwrap();
        let a = admission(dir.path());
        let first = a.put().await.unwrap();
        let e = a.put().await.unwrap_err();
        assert_eq!(e.http_status(), 503);
        assert!(e.to_string().contains("maximum of 1 uploads"), "{e}");
        let (_g1, _g2) = (a.get().await.unwrap(), a.get().await.unwrap());
        drop(first);
        let _again = a.put().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn reads_share_their_memory_and_a_wait_ends_in_slow_down() {
        let dir = tempfile::tempdir().unwrap();
        let a = Admission::new(&GatewayConfig {
            data_dir: dir.path().to_owned(),
            read_memory: 1 << 20,
            queue_timeout: Duration::from_millis(50),
            ..GatewayConfig::default()
        });
        let most = a.read_memory(768 << 10).await.unwrap();
        let small = a.read_memory(100).await.unwrap();
        // 768 KiB + one 64 KiB unit taken: 192 KiB left.
        let e = a.read_memory(256 << 10).await.unwrap_err();
        assert_eq!(e.http_status(), 503);
        assert!(e.to_string().contains("memory for reads (1 MiB)"), "{e}");
        drop(most);
        // A read wanting more than there is takes it all, once the others are done.
        let waiting = tokio::spawn(async move {
            let all = a.read_memory(u64::MAX).await;
            (all.is_ok(), a)
        });
        drop(small);
        let (got, _a) = waiting.await.unwrap();
        assert!(got);
    }

    #[test]
    fn space_is_promised_once_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = admission(dir.path());
        let all = a.available().unwrap();
        assert!(all > 0, "the test needs some free disk");
        let half = a.reserve(all / 2).unwrap();
        assert!(a.reserve(all / 2 + all / 4).is_err());
        let e = a.reserve(u64::MAX).err().unwrap();
        assert_eq!(e.http_status(), 507);
        drop(half);
        assert!(a.available().unwrap() >= all.saturating_sub(1 << 20));
    }
}
