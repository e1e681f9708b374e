//! Who may use the API: users with roles (from the users file), sessions that expire, and
//! login throttling. Pure but for reading the users file and hashing: the moment is passed
//! in, so expiry and throttling are tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use serde::{Deserialize, Serialize};

/// What a user may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Their own state and calls.
    Agent,
    /// Their teams' agents and every queue.
    Supervisor,
    /// Everything, reloads and announcement switches included.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The ACD agent id an agent user is.
    pub agent: Option<String>,
    /// The teams a supervisor sees (empty for an admin: all).
    pub teams: Vec<String>,
    /// Argon2 PHC string.
    password: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsersError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// The users file: `[[user]]` tables.
#[derive(Debug, Default, Clone)]
pub struct Users {
    by_name: HashMap<String, User>,
}

/// Longest user name: a login form field, not a document. Longer ones are refused before
/// anything is looked up or remembered.
pub const MAX_NAME: usize = 64;
/// Longest password accepted for checking: hashing is costly, an attacker's megabyte is not
/// worth it.
pub const MAX_PASSWORD: usize = 256;

impl Users {
    pub fn parse(text: &str, file: &str) -> Result<Users, UsersError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileShape {
            #[serde(default)]
            user: Vec<Entry>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            name: String,
            role: Role,
            password: String,
            agent: Option<String>,
            #[serde(default)]
            teams: Vec<String>,
        }
        let invalid = |message: String| UsersError::Invalid {
            file: file.to_string(),
            message,
        };
        let shape: FileShape = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut by_name = HashMap::new();
        for e in shape.user {
            if e.name.is_empty()
                || e.name.len() > MAX_NAME
                || e.name.chars().any(|c| c.is_control() || c == ':')
            {
                return Err(invalid(format!(
                    "user name {:?}: 1 to {MAX_NAME} characters, no ':' or control characters",
                    e.name
                )));
            }
            let argon2id =
                PasswordHash::new(&e.password).is_ok_and(|h| h.algorithm.as_str() == "argon2id");
            if !argon2id {
                return Err(invalid(format!(
                    "user {:?}: `password` is not an argon2id hash (make one with `hotline user-password {}`)",
                    e.name, e.name
                )));
            }
            if e.role == Role::Agent && e.agent.is_none() {
                return Err(invalid(format!(
                    "user {:?} is an agent: name the agent id (agent = \"1001\")",
                    e.name
                )));
            }
            let user = User {
                name: e.name.clone(),
                role: e.role,
                agent: e.agent,
                teams: e.teams,
                password: e.password,
            };
            if by_name.insert(e.name.clone(), user).is_some() {
                return Err(invalid(format!("user {:?} is defined twice", e.name)));
            }
        }
        Ok(Users { by_name })
    }

    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|e| UsersError::Invalid {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Users::parse(&text, &path.display().to_string())
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The most argon2 blocks (1 KiB each) a password-check thread keeps between checks: what
/// hashes made by `hotline user-password` need.
const KEPT_BLOCKS: usize = argon2::Params::DEFAULT_M_COST as usize;

/// Whether `password` is the user's. Slow on purpose (argon2): call it off the async threads.
/// `memory` holds argon2's blocks (its memory cost, 19 MiB by default) from one check to the
/// next: allocated and freed per check, such blocks landed between other threads'
/// allocations and were not reused, and a burst of logins grew the heap by hundreds of MB.
pub fn verify(user: &User, password: &str, memory: &mut Vec<argon2::Block>) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    let Ok(hash) = PasswordHash::new(&user.password) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(hash.algorithm),
        argon2::Params::try_from(&hash),
    ) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map(argon2::Version::try_from)
        .transpose()
        .map(Option::unwrap_or_default)
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    // Kept between checks up to the default cost; a hash made elsewhere with a bigger one
    // gets its memory for that check only.
    let blocks = params.block_count();
    let mut once = Vec::new();
    let memory = if blocks <= KEPT_BLOCKS {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        memory
    } else {
        once.resize(blocks, argon2::Block::default());
        &mut once
    };
    let mut out = [0u8; argon2::password_hash::Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let hashed = argon2::Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks])
        .is_ok();
    // What the password left in the blocks does not wait in memory for the next check.
    memory[..blocks].fill(argon2::Block::default());
    // Output's equality is constant-time.
    hashed && argon2::password_hash::Output::new(out).is_ok_and(|computed| computed == expected)
}

/// An argon2id PHC string for a new password, with a salt from the OS.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| "no randomness from the OS".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub agent: Option<String>,
    pub teams: Vec<String>,
    /// The password hash at login: a changed password ends the session.
    password: String,
    created: Instant,
    last_seen: Instant,
}

/// Sessions by token. Bounded in all (a full table refuses new logins rather than end
/// other people's sessions) and per user (a user's oldest session makes room for their
/// newest).
#[derive(Debug)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
    /// Ended after this long without a request.
    pub idle: Duration,
    /// Ended this long after login, however busy.
    pub max_age: Duration,
    cap: usize,
}

/// Sessions one user may have at once (browser tabs, a phone, a CRM).
pub const SESSIONS_PER_USER: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many sessions at once; try again later")]
pub struct SessionsFull;

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration, cap: usize) -> Sessions {
        Sessions {
            by_token: HashMap::new(),
            idle,
            max_age,
            cap: cap.max(1),
        }
    }

    pub fn create(&mut self, user: &User, token: String, now: Instant) -> Result<(), SessionsFull> {
        self.expire(now);
        let mine: Vec<(&String, &Session)> = self
            .by_token
            .iter()
            .filter(|(_, s)| s.user == user.name)
            .collect();
        if mine.len() >= SESSIONS_PER_USER {
            if let Some(oldest) = mine
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(t, _)| (*t).clone())
            {
                self.by_token.remove(&oldest);
            }
        } else if self.by_token.len() >= self.cap {
            return Err(SessionsFull);
        }
        self.by_token.insert(
            token,
            Session {
                user: user.name.clone(),
                role: user.role,
                agent: user.agent.clone(),
                teams: user.teams.clone(),
                password: user.password.clone(),
                created: now,
                last_seen: now,
            },
        );
        Ok(())
    }

    /// The session of `token` if it is live; a request keeps it alive.
    pub fn check(&mut self, token: &str, now: Instant) -> Option<Session> {
        let live = self.by_token.get(token).is_some_and(|s| self.live(s, now));
        if !live {
            self.by_token.remove(token);
            return None;
        }
        let s = self.by_token.get_mut(token)?;
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn end(&mut self, token: &str) -> bool {
        self.by_token.remove(token).is_some()
    }

    /// Ends every session of a user who is gone from the users file, or whose role, agent,
    /// teams or password changed.
    pub fn retain_users(&mut self, users: &Users) {
        self.by_token.retain(|_, s| {
            users.get(&s.user).is_some_and(|u| {
                u.role == s.role
                    && u.agent == s.agent
                    && u.teams == s.teams
                    && u.password == s.password
            })
        });
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) < self.idle
            && now.saturating_duration_since(s.created) < self.max_age
    }

    fn expire(&mut self, now: Instant) {
        let (idle, max_age) = (self.idle, self.max_age);
        self.by_token.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) < idle
                && now.saturating_duration_since(s.created) < max_age
        });
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// Login attempts per user name and per address. An attempt counts when it starts (so
/// concurrent guesses cannot all slip past the check) and is taken back when it succeeds.
/// Past the limit within the window, that key is refused until the window has passed.
/// Bounded: a full table forgets its oldest entries. IPv6 addresses count by /64, the
/// block one subscriber gets.
#[derive(Debug)]
pub struct Throttle {
    entries: HashMap<Key, Attempts>,
    pub window: Duration,
    pub per_user: u32,
    pub per_address: u32,
    cap: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    count: u32,
    since: Instant,
}

/// The address as throttles and caps count it: IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

impl Throttle {
    pub fn new(window: Duration, per_user: u32, per_address: u32, cap: usize) -> Throttle {
        Throttle {
            entries: HashMap::new(),
            window,
            per_user,
            per_address,
            cap: cap.max(2),
        }
    }

    /// An attempt for `user` (None: a name too long to be anyone's, counted against the
    /// address only) from `from`. Ok: go ahead, the attempt is counted; Err: refused, retry
    /// after this long.
    pub fn begin(
        &mut self,
        user: Option<&str>,
        from: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let window = self.window;
        self.entries
            .retain(|_, f| now.saturating_duration_since(f.since) < window);
        let address = Key::Address(address_key(from));
        let mut keys = vec![(address, self.per_address)];
        if let Some(user) = user {
            keys.push((Key::User(user.to_string()), self.per_user));
        }
        let mut wait = None;
        for (key, limit) in &keys {
            if let Some(f) = self.entries.get(key)
                && f.count >= *limit
            {
                let left = window.saturating_sub(now.saturating_duration_since(f.since));
                wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for (key, _) in keys {
            if self.entries.len() >= self.cap && !self.entries.contains_key(&key) {
                // Full: forget the oldest entry rather than refuse everyone.
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
            self.entries
                .entry(key)
                .or_insert(Attempts {
                    count: 0,
                    since: now,
                })
                .count += 1;
        }
        Ok(())
    }

    /// The attempt was good: it does not count against the address, and the user's earlier
    /// failures are forgotten.
    pub fn succeeded(&mut self, user: &str, from: IpAddr) {
        self.entries.remove(&Key::User(user.to_string()));
        if let Some(f) = self.entries.get_mut(&Key::Address(address_key(from))) {
            f.count = f.count.saturating_sub(1);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A session token: 32 bytes from the OS, hex.
pub fn new_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let hash = hash_password("s3cret").unwrap();
        Users::parse(
            &format!(
                "[[user]]\nname = \"li\"\nrole = \"agent\"\nagent = \"1001\"\npassword = \"{hash}\"\n\
                 [[user]]\nname = \"wang\"\nrole = \"supervisor\"\nteams = [\"billing\"]\npassword = \"{hash}\"\n"
            ),
            "users.toml",
        )
        .unwrap()
    }

    #[test]
    fn passwords_are_checked_against_argon2_hashes() {
        use argon2::password_hash::PasswordVerifier;
        let users = users();
        let li = users.get("li").unwrap();
        let mut memory = Vec::new();
        assert!(verify(li, "s3cret", &mut memory));
        assert!(!verify(li, "s3cret ", &mut memory));
        assert!(!verify(li, &"x".repeat(MAX_PASSWORD + 1), &mut memory));
        // The blocks are kept for the next check, whatever its answer.
        assert_eq!(memory.len(), argon2::Params::DEFAULT_M_COST as usize);
        // Hashes made elsewhere, with other algorithms, versions, costs and lengths, are
        // judged exactly as the library judges them; one costlier than what is kept gets
        // memory for that check only.
        let made = |algorithm, version, m, out: Option<usize>| {
            argon2::Argon2::new(
                algorithm,
                version,
                argon2::Params::new(m, 1, 1, out).unwrap(),
            )
            .hash_password(b"other", &SaltString::encode_b64(&[7u8; 16]).unwrap())
            .unwrap()
            .to_string()
        };
        use argon2::{Algorithm::*, Version::*};
        let hashes = [
            li.password.clone(),
            made(Argon2id, V0x13, 1024, None),
            made(Argon2i, V0x10, 64, Some(16)),
            made(Argon2d, V0x13, 256, Some(64)),
            made(Argon2id, V0x13, KEPT_BLOCKS as u32 + 1024, None),
        ];
        for hash in hashes {
            let user = User {
                password: hash,
                ..li.clone()
            };
            for password in ["other", "s3cret", "", "other "] {
                let library = argon2::Argon2::default()
                    .verify_password(
                        password.as_bytes(),
                        &PasswordHash::new(&user.password).unwrap(),
                    )
                    .is_ok();
                assert_eq!(
                    verify(&user, password, &mut memory),
                    library,
                    "{} with {password:?}",
                    user.password
                );
            }
            assert!(memory.len() <= KEPT_BLOCKS, "nothing costlier is kept");
            assert!(
                memory.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)),
                "nothing of the password is left"
            );
        }
        assert!(hash_password("a").unwrap().starts_with("$argon2id$"));
    }

    #[test]
    fn the_users_file_is_checked() {
        let hash = hash_password("x").unwrap();
        let bad = [
            (
                "[[user]]\nname = \"a\"\nrole = \"agent\"\npassword = \"HASH\"\n",
                "name the agent id",
            ),
            (
                "[[user]]\nname = \"a\"\nrole = \"boss\"\npassword = \"HASH\"\n",
                "unknown variant",
            ),
            (
                "[[user]]\nname = \"a\"\nrole = \"admin\"\npassword = \"plain\"\n",
                "not an argon2id hash",
            ),
            (
                "[[user]]\nname = \"a\"\nrole = \"admin\"\npassword = \"$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo\"\n",
                "not an argon2id hash",
            ),
            (
                "[[user]]\nname = \"a:b\"\nrole = \"admin\"\npassword = \"HASH\"\n",
                "no ':'",
            ),
            (
                "[[user]]\nname = \"a\"\nrole = \"admin\"\npassword = \"HASH\"\n[[user]]\nname = \"a\"\nrole = \"admin\"\npassword = \"HASH\"\n",
                "defined twice",
            ),
            (
                "[[user]]\nname = \"a\"\nrole = \"admin\"\npasword = \"HASH\"\n",
                "unknown field",
            ),
        ];
        for (text, want) in bad {
            let err = Users::parse(&text.replace("HASH", &hash), "users.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.starts_with("users.toml"), "{err}");
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_age() {
        let users = users();
        let li = users.get("li").unwrap();
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300), 10);
        s.create(li, "t1".into(), t0).unwrap();
        assert_eq!(
            s.check("t1", t0 + Duration::from_secs(59)).unwrap().user,
            "li"
        );
        // Kept alive by use, up to its age.
        for n in 2..5 {
            assert!(s.check("t1", t0 + Duration::from_secs(59 * n)).is_some());
        }
        assert!(
            s.check("t1", t0 + Duration::from_secs(300)).is_none(),
            "too old"
        );
        s.create(li, "t2".into(), t0).unwrap();
        assert!(
            s.check("t2", t0 + Duration::from_secs(61)).is_none(),
            "idle"
        );
        assert!(s.check("nope", t0).is_none());
        s.create(li, "t3".into(), t0).unwrap();
        assert!(s.end("t3") && !s.end("t3"));
    }

    #[test]
    fn sessions_are_bounded_and_follow_the_users_file() {
        let users = users();
        let li = users.get("li").unwrap();
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300), 3);
        for n in 0..3u64 {
            s.create(li, format!("t{n}"), t0 + Duration::from_millis(n))
                .unwrap();
        }
        assert_eq!(
            s.create(li, "t3".into(), t0),
            Err(SessionsFull),
            "a full table refuses, ending nobody's session"
        );
        assert_eq!(s.len(), 3);
        // Per user: the oldest of their own makes room.
        let mut s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300), 1000);
        for n in 0..(SESSIONS_PER_USER as u64 + 2) {
            s.create(li, format!("t{n}"), t0 + Duration::from_millis(n))
                .unwrap();
        }
        assert_eq!(s.len(), SESSIONS_PER_USER);
        assert!(s.check("t0", t0).is_none() && s.check("t1", t0).is_none());
        // A changed password, or a removed user, ends the sessions.
        let mut changed = users.clone();
        changed.by_name.get_mut("li").unwrap().password = hash_password("new one").unwrap();
        s.retain_users(&changed);
        assert!(s.is_empty(), "a changed password ends the sessions");
        s.create(li, "u".into(), t0).unwrap();
        s.retain_users(&Users::default());
        assert!(s.is_empty(), "a removed user's sessions end");
    }

    #[test]
    fn logins_are_throttled_per_user_and_per_address() {
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut t = Throttle::new(Duration::from_secs(300), 5, 20, 1000);
        // Counted when they start: five at once use up the user's allowance.
        for _ in 0..5 {
            assert_eq!(t.begin(Some("li"), a, t0), Ok(()));
        }
        let wait = t
            .begin(Some("li"), b, t0 + Duration::from_secs(100))
            .unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(200),
            "the user is locked from every address"
        );
        assert_eq!(
            t.begin(Some("wang"), a, t0),
            Ok(()),
            "the address is not, yet"
        );
        t.succeeded("wang", a);
        assert_eq!(
            t.begin(Some("li"), a, t0 + Duration::from_secs(300)),
            Ok(()),
            "the window passed"
        );
        // An address guessing many names is locked out by itself, long names included.
        for n in 0..20 {
            let name = format!("u{n}");
            let _ = t.begin(
                if n % 2 == 0 {
                    Some(name.as_str())
                } else {
                    None
                },
                b,
                t0,
            );
        }
        assert!(t.begin(Some("someone"), b, t0).is_err());
        // A good login gives its attempt back to the address.
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..40 {
            assert_eq!(t.begin(Some("wang"), c, t0), Ok(()));
            t.succeeded("wang", c);
        }
        // IPv6 counts by /64.
        let mut t = Throttle::new(Duration::from_secs(300), 5, 3, 1000);
        for n in 1..=3u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, n]);
            assert!(t.begin(None, ip, t0).is_ok());
        }
        assert!(
            t.begin(None, "2001:db8:0:1::99".parse().unwrap(), t0)
                .is_err()
        );
        assert!(
            t.begin(None, "2001:db8:0:2::1".parse().unwrap(), t0)
                .is_ok()
        );
        // Bounded: a flood of addresses forgets the oldest, and a newcomer still gets in.
        let mut t = Throttle::new(Duration::from_secs(300), 5, 20, 10);
        for n in 0..50u32 {
            let _ = t.begin(
                Some("x"),
                IpAddr::from(n.to_be_bytes()),
                t0 + Duration::from_millis(u64::from(n)),
            );
        }
        assert!(t.len() <= 10);
        assert!(
            t.begin(
                Some("y"),
                "198.51.100.1".parse().unwrap(),
                t0 + Duration::from_secs(1)
            )
            .is_ok()
        );
    }
}
