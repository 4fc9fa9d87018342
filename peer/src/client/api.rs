//! The gateway's object API as the client uses it: the bucket list and listings, `DELETE`, and
//! RT-0004's `_place` and `_cap` requests. Bodies are read whole (every answer here is small) and
//! errors carry the gateway's `{"error", "message"}`.
//!
//! Wire types take what the client reads and ignore other fields, so a gateway that adds fields
//! keeps working; a placement state this client does not know is [`PlaceState::Unknown`].

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use raidtorrent_proto::sigv4;
use reqwest::{Method, StatusCode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{percent_encode, ClientError, ObjectName};

/// Longest wait a placement follow-up asks for (RT-0004 §2 allows 60).
pub const FOLLOW_WAIT_SECS: u64 = 30;
/// Time allowed for a request, beyond any wait it asks the gateway for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bucket's redundancy policy, as far as the client needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub k: u16,
    pub m: u16,
    pub copies: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub policy: Policy,
    #[serde(default)]
    pub created_at: i64,
}

#[derive(Deserialize)]
struct BucketList {
    buckets: Vec<Bucket>,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub storage: String,
}

/// One page of `GET /<bucket>`.
#[derive(Debug, Deserialize)]
pub struct Listing {
    pub objects: Vec<ObjectEntry>,
    pub next_after: Option<String>,
}

/// `POST /_place/<bucket>/<key>`'s body: base64 manifest and info dicts, the client's addresses.
#[derive(Debug, Serialize)]
pub struct PlaceRequest {
    pub manifest: String,
    pub shards: Vec<String>,
    pub peers: Vec<String>,
}

impl PlaceRequest {
    pub fn new(manifest: &[u8], infos: &[Vec<u8>], peers: Vec<String>) -> Self {
        PlaceRequest {
            manifest: B64.encode(manifest),
            shards: infos.iter().map(|i| B64.encode(i)).collect(),
            peers,
        }
    }
}

/// Where one shard goes, and (when following) how many copies are confirmed.
#[derive(Debug, Clone, Deserialize)]
pub struct PlacedShard {
    pub info_hash: String,
    pub nodes: Vec<String>,
    #[serde(default)]
    pub confirmed: u16,
}

/// The `202` answer to a placement.
#[derive(Debug, Deserialize)]
pub struct Placement {
    pub placement: String,
    pub copies: u16,
    pub shards: Vec<PlacedShard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaceState {
    Placing,
    Stored,
    Failed,
    /// A state a newer gateway reports; the client keeps following.
    #[serde(other)]
    Unknown,
}

/// `GET /_place/<placement>`'s answer.
#[derive(Debug, Deserialize)]
pub struct PlaceStatus {
    pub state: PlaceState,
    pub copies: u16,
    pub shards: Vec<PlacedShard>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One shard of a `_cap` answer: its info dict (base64) and live holders, best first.
#[derive(Debug, Clone, Deserialize)]
pub struct CapShard {
    pub info: String,
    pub nodes: Vec<String>,
}

/// `GET /_cap/<bucket>/<key>?manifest=...`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct CapAnswer {
    pub manifest: String,
    pub shards: Vec<CapShard>,
    #[serde(default)]
    pub at_risk: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

/// How the client proves to the gateway who it is (RT-0004 section 5).
#[derive(Clone, Default)]
pub enum Credentials {
    /// Nothing: an open gateway, or a capability read.
    #[default]
    None,
    /// An object API key, sent as a bearer token.
    ApiKey(String),
    /// An S3 access key: every request is signed with AWS Signature Version 4, so the secret
    /// never leaves this machine.
    AccessKey {
        id: String,
        secret: String,
        region: String,
    },
}

impl std::fmt::Debug for Credentials {
    /// Names the kind and the key id, never a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::ApiKey(_) => f.write_str("ApiKey(..)"),
            Credentials::AccessKey { id, region, .. } => {
                write!(f, "AccessKey {{ id: {id}, region: {region} }}")
            }
        }
    }
}

/// One gateway's object API.
pub struct Api {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
}

impl Api {
    /// `base` is the object API URL (`http://host:port`).
    pub fn new(base: &str, credentials: Credentials) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Other(e.into()))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credentials,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn buckets(&self) -> Result<Vec<Bucket>, ClientError> {
        let list: BucketList = self.json(Method::GET, "/", None, None).await?;
        Ok(list.buckets)
    }

    /// The bucket named `name`, from the bucket list.
    pub async fn bucket(&self, name: &str) -> Result<Bucket, ClientError> {
        self.buckets()
            .await?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| ClientError::Http {
                status: 404,
                code: "NoSuchBucket".into(),
                message: format!("no bucket {name:?} on this gateway"),
            })
    }

    /// One page of a bucket's objects whose keys start with `prefix`, after `after`.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Listing, ClientError> {
        let mut path = format!(
            "/{}?prefix={}",
            percent_encode(bucket, b""),
            percent_encode(prefix, b"")
        );
        if let Some(a) = after {
            path.push_str(&format!("&after={}", percent_encode(a, b"")));
        }
        self.json(Method::GET, &path, None, None).await
    }

    pub async fn delete(&self, name: &ObjectName) -> Result<(), ClientError> {
        self.call(Method::DELETE, &object_path("", name), None, None)
            .await
            .map(drop)
    }

    pub async fn place(
        &self,
        name: &ObjectName,
        req: &PlaceRequest,
    ) -> Result<Placement, ClientError> {
        let body = serde_json::to_vec(req).map_err(|e| ClientError::Other(e.into()))?;
        self.json(
            Method::POST,
            &object_path("/_place", name),
            Some(body),
            None,
        )
        .await
    }

    /// The placement's state once it changes, or after `wait_secs`.
    pub async fn follow(
        &self,
        placement: &str,
        wait_secs: u64,
    ) -> Result<PlaceStatus, ClientError> {
        let path = format!(
            "/_place/{}?wait={wait_secs}",
            percent_encode(placement, b"")
        );
        let timeout = REQUEST_TIMEOUT + Duration::from_secs(wait_secs);
        self.json(Method::GET, &path, None, Some(timeout)).await
    }

    /// Cancels a placement (RT-0004 §2): its status once it ended, `failed` unless it had
    /// already been stored.
    pub async fn cancel(&self, placement: &str) -> Result<PlaceStatus, ClientError> {
        let path = format!("/_place/{}", percent_encode(placement, b""));
        let timeout = REQUEST_TIMEOUT + Duration::from_secs(FOLLOW_WAIT_SECS);
        self.json(Method::DELETE, &path, None, Some(timeout)).await
    }

    /// RT-0004 §3: a `404` (no object, or not this manifest) is [`ClientError::NoSuchObject`].
    pub async fn cap(
        &self,
        name: &ObjectName,
        manifest: &[u8; 32],
    ) -> Result<CapAnswer, ClientError> {
        let path = format!(
            "{}?manifest={}",
            object_path("/_cap", name),
            hex::encode(manifest)
        );
        match self.json(Method::GET, &path, None, None).await {
            Err(ClientError::Http { status: 404, .. }) => Err(ClientError::NoSuchObject),
            other => other,
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<T, ClientError> {
        let bytes = self.call(method, path, body, timeout).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Untrusted(format!(
                "the answer to {path} is not the JSON expected: {e}"
            ))
        })
    }

    /// Sends one request; a non-2xx answer becomes [`ClientError::Http`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, ClientError> {
        let url = reqwest::Url::parse(&format!("{}{path}", self.base)).map_err(|e| {
            ClientError::Unreachable {
                url: self.base.clone(),
                reason: format!("not a URL: {e}"),
            }
        })?;
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .timeout(timeout.unwrap_or(REQUEST_TIMEOUT));
        for (name, value) in self.auth_headers(&method, &url, body.as_deref())? {
            req = req.header(name, value);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(http_error(status, &bytes))
    }

    /// The headers that authenticate one request.
    fn auth_headers(
        &self,
        method: &Method,
        url: &reqwest::Url,
        body: Option<&[u8]>,
    ) -> Result<Vec<(&'static str, String)>, ClientError> {
        let (id, secret, region) = match &self.credentials {
            Credentials::None => return Ok(vec![]),
            Credentials::ApiKey(key) => {
                return Ok(vec![("authorization", format!("Bearer {key}"))])
            }
            Credentials::AccessKey { id, secret, region } => (id, secret, region),
        };
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_owned(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signer = sigv4::Signer {
            access_key: id,
            secret,
            region,
        };
        let headers = signer
            .headers(
                method.as_str(),
                &host,
                url.path(),
                url.query().unwrap_or(""),
                body.unwrap_or_default(),
                now,
            )
            .map_err(|e| ClientError::Other(anyhow::anyhow!("signing the request: {e}")))?;
        Ok(headers.into())
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(&format!(": {s}"));
            source = s.source();
        }
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

/// `<prefix>/<bucket>/<key>` with each part percent-encoded (the key's `/` kept).
fn object_path(prefix: &str, name: &ObjectName) -> String {
    format!(
        "{prefix}/{}/{}",
        percent_encode(&name.bucket, b""),
        percent_encode(&name.key, b"/")
    )
}

fn http_error(status: StatusCode, body: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (e.error, e.message),
        Err(_) => (
            status.canonical_reason().unwrap_or("").to_owned(),
            String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        ),
    };
    ClientError::Http {
        status: status.as_u16(),
        code,
        message,
    }
}

/// Decodes a base64 field of a gateway answer.
pub fn base64_field(what: &str, s: &str) -> Result<Vec<u8>, ClientError> {
    B64.decode(s)
        .map_err(|e| ClientError::Untrusted(format!("{what} is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_encode_each_part() {
        let name = ObjectName::parse("b/dir/a b?.txt").unwrap();
        assert_eq!(object_path("/_place", &name), "/_place/b/dir/a%20b%3F.txt");
    }

    #[test]
    fn unknown_placement_states_are_kept() {
        let s: PlaceStatus = serde_json::from_str(
            r#"{"state":"verifying","copies":2,"shards":[{"info_hash":"ab","nodes":[],"confirmed":1}],"new":1}"#,
        )
        .unwrap();
        assert_eq!(s.state, PlaceState::Unknown);
        assert_eq!(s.shards[0].confirmed, 1);
    }

    #[test]
    fn errors_carry_the_gateways_message() {
        let e = http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"error":"InsufficientNodes","message":"2 nodes, 3 needed"}"#,
        );
        assert_eq!(
            e.to_string(),
            "gateway answered 503 InsufficientNodes: 2 nodes, 3 needed"
        );
        let e = http_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert!(e.to_string().contains("upstream down"));
    }
}
