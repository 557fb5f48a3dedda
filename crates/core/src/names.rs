//! Validated newtypes for the names and texts clients send, with the contract's limits.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::ValidationError;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Checks that `input` has `min..=max` characters (not bytes).
fn check_length(
    field: &'static str,
    input: &str,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    if (min..=max).contains(&input.chars().count()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be {min} to {max} characters long"),
        ))
    }
}

/// Checks that `input` uses only `[A-Za-z0-9_.-]`.
fn check_name_chars(field: &'static str, input: &str) -> Result<(), ValidationError> {
    if input.chars().all(is_name_char) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "may only contain letters, digits, '_', '.' and '-'",
        ))
    }
}

/// A username: 3 to 32 characters of `[A-Za-z0-9_.-]`.
///
/// Case is kept as registered, but two names that differ only in case are the same user
/// (the store enforces that), so nobody can register `Alice` beside `alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    /// Parses client input into a username, or says what is wrong with it.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        check_length("username", input, Self::MIN_LEN, Self::MAX_LEN)?;
        check_name_chars("username", input)?;
        Ok(Self(input.to_owned()))
    }

    /// Wraps a name the store already holds. It was checked when it was written (or it came
    /// with a migrated seed database, whose rules were looser), so it is not checked again.
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Username {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A password as typed by its owner: 8 to 128 characters.
///
/// Its `Debug` is redacted so that it cannot reach a log line by accident; the only way to read
/// it is [`Password::expose`], called where it is hashed or verified.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 128;

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        check_length("password", input, Self::MIN_LEN, Self::MAX_LEN)?;
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A room name: 1 to 64 characters of `[A-Za-z0-9_.-]`, or a direct-message room
/// `dm:<user1>:<user2>` of two different valid usernames.
///
/// Direct-message names are canonical: usernames are compared without case, so the two names
/// are lowercased and sorted (`dm:Bob:alice` is parsed as `dm:alice:bob`), and each pair of
/// users has exactly one room.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

impl RoomName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        if let Some(rest) = input.strip_prefix("dm:") {
            let (a, b) = rest.split_once(':').ok_or_else(bad_dm)?;
            let a = Username::parse(&a.to_ascii_lowercase()).map_err(|_| bad_dm())?;
            let b = Username::parse(&b.to_ascii_lowercase()).map_err(|_| bad_dm())?;
            return Self::direct(&a, &b);
        }
        check_length("room", input, 1, Self::MAX_LEN)?;
        check_name_chars("room", input)?;
        Ok(Self(input.to_owned()))
    }

    /// The direct-message room of two different users, whichever order they are given in.
    pub fn direct(a: &Username, b: &Username) -> Result<Self, ValidationError> {
        let (a, b) = (
            a.as_str().to_ascii_lowercase(),
            b.as_str().to_ascii_lowercase(),
        );
        if a == b {
            return Err(ValidationError::new(
                "room",
                "a direct-message room names two different users",
            ));
        }
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        Ok(Self(format!("dm:{lo}:{hi}")))
    }

    /// Wraps a name the store already holds (it was parsed when first written).
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The two members of a direct-message room (lowercased), or `None` for a public room.
    pub fn direct_members(&self) -> Option<(&str, &str)> {
        self.0.strip_prefix("dm:").and_then(|r| r.split_once(':'))
    }

    /// Whether `user` may join, read and write this room: anyone for a public room, only its
    /// two members for a direct-message room.
    pub fn admits(&self, user: &Username) -> bool {
        match self.direct_members() {
            None => true,
            Some((a, b)) => {
                let name = user.as_str();
                name.eq_ignore_ascii_case(a) || name.eq_ignore_ascii_case(b)
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn bad_dm() -> ValidationError {
    ValidationError::new(
        "room",
        "a direct-message room is dm:<user1>:<user2> with two valid usernames",
    )
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RoomName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A message body: 1 to 4000 characters, not only whitespace (or empty, for a message that
/// carries attachments: [`MessageBody::empty`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub const MAX_LEN: usize = 4000;

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        if input.trim().is_empty() {
            return Err(ValidationError::new("body", "must not be empty"));
        }
        if input.chars().count() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "body",
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The body of a message that carries attachments and says nothing.
    pub fn empty() -> Self {
        Self(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for MessageBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_contract() {
        for ok in ["abc", "alice", "a.b-c_d", "A1", &"x".repeat(32)] {
            if ok.len() >= 3 {
                assert!(Username::parse(ok).is_ok(), "{ok} should be valid");
            }
        }
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "al ice",
            "al:ce",
            "ålice",
            "<script>",
        ] {
            let err = Username::parse(bad).expect_err(bad);
            assert_eq!(err.field, "username");
        }
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert!(Password::parse(&"é".repeat(129)).is_err());
        assert!(Password::parse("ééééééé").is_err());
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let p = Password::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn room_names_follow_the_contract() {
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse("a").is_ok());
        assert!(RoomName::parse(&"r".repeat(64)).is_ok());
        assert!(RoomName::parse(&"r".repeat(65)).is_err());
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("no spaces").is_err());
        assert!(RoomName::parse("dm:alice:bob").is_ok());
        assert!(
            RoomName::parse("dm:Alice:alice").is_err(),
            "same user twice"
        );
        assert!(
            RoomName::parse("dm:alice:alice").is_err(),
            "same user twice"
        );
        assert!(RoomName::parse("dm:alice").is_err());
        assert!(RoomName::parse("dm:al:bob").is_err(), "short username");
    }

    #[test]
    fn direct_rooms_sort_their_members() {
        let a = Username::parse("zed").expect("valid");
        let b = Username::parse("amy").expect("valid");
        let room = RoomName::direct(&a, &b).expect("valid");
        assert_eq!(room.as_str(), "dm:amy:zed");
        assert_eq!(room.direct_members(), Some(("amy", "zed")));
        assert_eq!(
            RoomName::parse("general").expect("valid").direct_members(),
            None
        );
    }

    #[test]
    fn bodies_follow_the_contract() {
        assert!(MessageBody::parse("hi").is_ok());
        assert!(MessageBody::parse("").is_err());
        assert!(MessageBody::parse("   \n").is_err());
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse(&"é".repeat(4001)).is_err());
    }

    #[test]
    fn names_serialize_as_plain_strings() {
        let u = Username::parse("alice").expect("valid");
        assert_eq!(serde_json::to_string(&u).expect("json"), "\"alice\"");
    }
}
