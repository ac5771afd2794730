//! One borrowed, typed view over every JSON object shape (A1, A2, A3, Passport ndjson).
//!
//! Why a hand-written map visitor rather than `#[derive(Deserialize)]`: real exports repeat
//! keys (Graph pages repeat `homeTenantId`, ...) and drift in casing (`resultType` /
//! `ResultType`, `Level` / `level`); derive rejects duplicates of fields it reads and
//! needs an alias per spelling. Here keys are matched case-insensitively, a repeated key
//! simply overwrites (last non-null wins), and every unknown value is skipped with
//! `IgnoredAny` without building anything. Strings borrow from the input unless they
//! contain escapes.
//!
//! `direct.rs` reads the common shape of a record into the same `Obj` first, without
//! serde; this visitor is its reference, and decides every record that it leaves (and
//! every error).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::words::{bytes_above_ascii, bytes_below};

/// A lenient scalar: strings, numbers and booleans all read as text; `null`, objects and
/// arrays read as absent.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LStr<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for LStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = LStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(LStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(LStr(Some(Cow::Owned(v))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(LStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(LStr(Some(Cow::Borrowed(if v { "true" } else { "false" }))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(LStr(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(LStr(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                LStr::<'a>::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LStr(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'a> LStr<'a> {
    /// Non-empty text, trimmed.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    pub fn owned(&self) -> Option<String> {
        self.get().map(str::to_owned)
    }

    fn into_static(self) -> LStr<'static> {
        LStr(self.0.map(|c| Cow::Owned(c.into_owned())))
    }
}

/// A lenient result code: `50126`, `"50126"`, `50126.0`; anything else is absent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct LCode(pub Option<u32>);

impl<'de> Deserialize<'de> for LCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = LStr::deserialize(d)?;
        Ok(LCode(s.get().and_then(parse_code)))
    }
}

/// Reads a code from text (`"50126"`, `"50126.0"`).
pub(crate) fn parse_code(s: &str) -> Option<u32> {
    let s = s.trim();
    s.parse::<u32>().ok().or_else(|| s.strip_suffix(".0").and_then(|t| t.parse::<u32>().ok()))
}

/// `status` / `Status`: an object, or (Log Analytics) a string that holds that object.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Status<'a> {
    pub error_code: Option<u32>,
    pub failure_reason: LStr<'a>,
    pub additional_details: LStr<'a>,
    /// The value was an object (or JSON text of one) naming at least one of these fields:
    /// a sign-in's status, not a token endpoint's HTTP `"status":400` or any other value.
    pub shaped: bool,
    /// The value was text that holds no status object: PowerShell's depth-truncated
    /// `"System.Collections.Hashtable"`, or a bare word. The sign-in's result is lost.
    pub unreadable: bool,
}

impl<'de> Deserialize<'de> for Status<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Status<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut st = Status::default();
                while let Some(k) = a.next_key::<Key>()? {
                    match k.0 {
                        F::ErrorCode => {
                            st.shaped = true;
                            if let Some(c) = a.next_value::<LCode>()?.0 {
                                st.error_code = Some(c);
                            }
                        }
                        F::FailureReason => {
                            st.shaped = true;
                            set(&mut st.failure_reason, a.next_value()?);
                        }
                        F::AdditionalDetails => {
                            st.shaped = true;
                            set(&mut st.additional_details, a.next_value()?);
                        }
                        _ => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(st)
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Status::from_json_text(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Status::default())
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Status::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Status::deserialize(d)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Status::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Status::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Status::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Status::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Status::default())
            }
        }
        d.deserialize_any(V)
    }
}

impl Status<'_> {
    /// A status cell that holds JSON text (Log Analytics exports, CSV).
    pub fn from_json_text(s: &str) -> Status<'static> {
        match serde_json::from_str::<Status<'_>>(s) {
            Ok(st) => st.into_static(),
            Err(_) => Status { unreadable: !s.trim().is_empty(), ..Status::default() },
        }
    }

    fn into_static(self) -> Status<'static> {
        Status {
            error_code: self.error_code,
            failure_reason: self.failure_reason.into_static(),
            additional_details: self.additional_details.into_static(),
            shaped: self.shaped,
            unreadable: self.unreadable,
        }
    }
}

/// `deviceDetail` (only its display name is used).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DeviceDetail<'a> {
    pub display_name: LStr<'a>,
}

impl DeviceDetail<'_> {
    /// Decodes `deviceDetail` given as JSON text (a CSV cell, or a string in a Log
    /// Analytics JSON row); anything else gives no device.
    pub fn from_json_text(s: &str) -> DeviceDetail<'static> {
        match serde_json::from_str::<DeviceDetail<'_>>(s) {
            Ok(d) => DeviceDetail { display_name: d.display_name.into_static() },
            Err(_) => DeviceDetail::default(),
        }
    }
}

impl<'de> Deserialize<'de> for DeviceDetail<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DeviceDetail<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a deviceDetail object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut dd = DeviceDetail::default();
                while let Some(k) = a.next_key::<Key>()? {
                    if k.0 == F::DisplayName {
                        set(&mut dd.display_name, a.next_value()?);
                    } else {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(dd)
            }
            // JSON text in a string, as `az monitor log-analytics query` writes it.
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(DeviceDetail::from_json_text(s))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(DeviceDetail::default())
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(DeviceDetail::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                DeviceDetail::deserialize(d)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(DeviceDetail::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(DeviceDetail::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(DeviceDetail::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(DeviceDetail::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(DeviceDetail::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// An array of still-undecoded elements (`records`, `value`), or absent when the key holds
/// anything else.
#[derive(Debug, Default)]
pub(crate) struct RawList<'a>(pub Option<Vec<&'a RawValue>>);

impl<'de> Deserialize<'de> for RawList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_element::<&'de RawValue>()? {
                    v.push(e);
                }
                Ok(RawList(Some(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawList(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawList(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(RawList(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(RawList(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                RawList::deserialize(d)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawList(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawList(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawList(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawList(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The union of the fields any decoder reads, at one object level. `properties` (A1) is the
/// same shape one level down.
#[derive(Debug, Default)]
pub(crate) struct Obj<'a> {
    /// Set by `parse_obj` when another object follows this one on its line (`{…}{…}` or
    /// `{…}, {…}`, as some shippers write): where this one ends and the next begins.
    pub next_object: Option<(usize, usize)>,
    pub time: LStr<'a>,
    pub time_generated: LStr<'a>,
    pub created: LStr<'a>,
    pub timestamp: LStr<'a>,
    pub result_type: Option<u32>,
    pub result_type_seen: bool,
    pub result_description: LStr<'a>,
    pub tenant_id: LStr<'a>,
    /// Log Analytics' `AADTenantId`: the directory, where its `TenantId` is the workspace.
    pub aad_tenant_id: LStr<'a>,
    pub resource_id: LStr<'a>,
    pub resource_tenant_id: LStr<'a>,
    pub correlation_id: LStr<'a>,
    pub identity: LStr<'a>,
    pub caller_ip: LStr<'a>,
    pub ip: LStr<'a>,
    pub upn: LStr<'a>,
    pub app_id: LStr<'a>,
    pub app_name: LStr<'a>,
    pub client_app: LStr<'a>,
    pub auth_protocol: LStr<'a>,
    pub token_issuer_type: LStr<'a>,
    pub id: LStr<'a>,
    pub status: Option<Status<'a>>,
    pub properties: Option<Box<Obj<'a>>>,
    pub records: Option<Vec<&'a RawValue>>,
    pub value: Option<Vec<&'a RawValue>>,
    pub event_message: LStr<'a>,
    pub event_message_seen: bool,
    pub message_type: LStr<'a>,
    pub subsystem: LStr<'a>,
    pub category: LStr<'a>,
    /// A Log Analytics row's table (`Type`: `SigninLogs`, `AuditLogs`,
    /// `MicrosoftGraphActivityLogs`), which says what the row is when no `Category` does.
    pub log_type: LStr<'a>,
    pub process_image_path: LStr<'a>,
    pub sender_image_path: LStr<'a>,
    /// A unified-log entry's `processID`: part of its key, which tells apart the same
    /// message logged at the same moment on two Macs.
    pub process_id: Option<u32>,
    pub device_detail: Option<DeviceDetail<'a>>,
    pub fields: u32,
}

impl Obj<'_> {
    /// `properties` given as JSON text (a shipper that stringified the nested object): the
    /// same record as if it were an object. An envelope's lists are not kept: `properties`
    /// holds a sign-in, not records.
    pub(super) fn from_json_text(s: &str) -> Option<Obj<'static>> {
        if !s.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str::<Obj<'_>>(s).ok().map(Obj::into_static)
    }

    fn into_static(self) -> Obj<'static> {
        Obj {
            next_object: None,
            time: self.time.into_static(),
            time_generated: self.time_generated.into_static(),
            created: self.created.into_static(),
            timestamp: self.timestamp.into_static(),
            result_type: self.result_type,
            result_type_seen: self.result_type_seen,
            result_description: self.result_description.into_static(),
            tenant_id: self.tenant_id.into_static(),
            aad_tenant_id: self.aad_tenant_id.into_static(),
            resource_id: self.resource_id.into_static(),
            resource_tenant_id: self.resource_tenant_id.into_static(),
            correlation_id: self.correlation_id.into_static(),
            identity: self.identity.into_static(),
            caller_ip: self.caller_ip.into_static(),
            ip: self.ip.into_static(),
            upn: self.upn.into_static(),
            app_id: self.app_id.into_static(),
            app_name: self.app_name.into_static(),
            client_app: self.client_app.into_static(),
            auth_protocol: self.auth_protocol.into_static(),
            token_issuer_type: self.token_issuer_type.into_static(),
            id: self.id.into_static(),
            status: self.status.map(Status::into_static),
            properties: self.properties.map(|p| Box::new(p.into_static())),
            records: None,
            value: None,
            event_message: self.event_message.into_static(),
            event_message_seen: self.event_message_seen,
            message_type: self.message_type.into_static(),
            subsystem: self.subsystem.into_static(),
            category: self.category.into_static(),
            log_type: self.log_type.into_static(),
            process_image_path: self.process_image_path.into_static(),
            sender_image_path: self.sender_image_path.into_static(),
            process_id: self.process_id,
            device_detail: self.device_detail.map(|d| DeviceDetail { display_name: d.display_name.into_static() }),
            fields: self.fields,
        }
    }
}

/// Field ids, from case-insensitive key matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum F {
    Time,
    TimeGenerated,
    Created,
    Timestamp,
    ResultType,
    ResultDescription,
    TenantId,
    AadTenantId,
    ResourceId,
    ResourceTenantId,
    CorrelationId,
    Identity,
    CallerIp,
    Ip,
    Upn,
    AppId,
    AppName,
    ClientApp,
    AuthProtocol,
    TokenIssuerType,
    Id,
    Status,
    Properties,
    Records,
    Value,
    EventMessage,
    MessageType,
    Subsystem,
    Category,
    LogType,
    ProcessImagePath,
    SenderImagePath,
    ProcessId,
    DeviceDetail,
    ErrorCode,
    FailureReason,
    AdditionalDetails,
    DisplayName,
    Other,
}

/// Classifies a key (or a CSV header cell such as `TimeGenerated [UTC]`).
pub(crate) fn field_of(key: &str) -> F {
    let kb = key.as_bytes();
    // Every name is ASCII letters only, so a key that matches one as it stands has nothing
    // to trim or split off: the general path below would find the same name.
    let named = field_of_name(kb);
    // Trimming and the CSV suffix split change a key only where it holds whitespace
    // (ASCII, or a non-ASCII character such as U+00A0). Almost every key holds none, and
    // skipping the general path for those (a `str::find` builds a two-way searcher per
    // call) leaves key matching a table lookup. The result is the same for every key.
    if named != F::Other || !has_space_control_or_non_ascii(kb) {
        return named;
    }
    let key = key.trim();
    // Portal CSV headers carry a unit / zone suffix: "TimeGenerated [UTC]".
    let key = match key.find(" [") {
        Some(i) => &key[..i],
        None => key,
    };
    field_of_name(key.as_bytes())
}

/// Whether `k` holds a byte that is a space, a control byte or not ASCII: every
/// whitespace character `str::trim` removes, and the space of a `" ["` suffix, has one.
pub(crate) fn has_space_control_or_non_ascii(k: &[u8]) -> bool {
    !all_words(k, k, |w, _| space_control_or_non_ascii(w) == 0)
}

/// Marks, in a word of eight bytes, the bytes that are a space, a control byte or above
/// ASCII: the first mark is the first such byte (see `words.rs`).
pub(super) fn space_control_or_non_ascii(w: u64) -> u64 {
    bytes_below(w, 0x21) | bytes_above_ascii(w)
}

/// Whether `f` holds for each pair of 8-byte words at one place in `a` and `b` (of one
/// length), the words covering every byte, some twice: the whole words, then the last 8
/// bytes. Fewer than 8 bytes make one word, of two overlapping 4-byte halves or, for 1 to
/// 3 bytes, of the first, middle and last byte repeated. Most keys are 5 to 20 bytes long,
/// and a loop over their bytes (or a copy into a padded word) cost more than the rest of
/// their classification.
fn all_words(a: &[u8], b: &[u8], f: impl Fn(u64, u64) -> bool) -> bool {
    fn word_at(k: &[u8], at: usize) -> u64 {
        k.get(at..).and_then(<[u8]>::first_chunk::<8>).map_or(0, |w| u64::from_ne_bytes(*w))
    }
    fn halves(k: &[u8]) -> u64 {
        let half = |h: Option<&[u8; 4]>| h.map_or(0, |h| u64::from(u32::from_ne_bytes(*h)));
        half(k.first_chunk::<4>()) | half(k.last_chunk::<4>()) << 32
    }
    fn spread(k: &[u8]) -> u64 {
        let (a, m, z) = (k.first(), k.get(k.len() / 2), k.last());
        let [a, m, z] = [a, m, z].map(|b| b.copied().unwrap_or_default());
        u64::from_ne_bytes([a, m, z, a, m, z, a, m])
    }
    let n = a.len().min(b.len());
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if !f(word_at(a, at), word_at(b, at)) {
                return false;
            }
            at += 8;
        }
        f(word_at(a, n - 8), word_at(b, n - 8))
    } else if n >= 4 {
        f(halves(a), halves(b))
    } else {
        n == 0 || f(spread(a), spread(b))
    }
}

/// Every name `field_of_name` knows, lower-case, with its field.
const FIELD_NAMES: [(&[u8], F); 38] = [
    (b"id", F::Id),
    (b"time", F::Time),
    (b"type", F::LogType),
    (b"appid", F::AppId),
    (b"value", F::Value),
    (b"status", F::Status),
    (b"records", F::Records),
    (b"tenantid", F::TenantId),
    (b"identity", F::Identity),
    (b"category", F::Category),
    (b"timestamp", F::Timestamp),
    (b"ipaddress", F::Ip),
    (b"subsystem", F::Subsystem),
    (b"errorcode", F::ErrorCode),
    (b"processid", F::ProcessId),
    (b"resulttype", F::ResultType),
    (b"resourceid", F::ResourceId),
    (b"properties", F::Properties),
    (b"messagetype", F::MessageType),
    (b"displayname", F::DisplayName),
    (b"aadtenantid", F::AadTenantId),
    (b"devicedetail", F::DeviceDetail),
    (b"eventmessage", F::EventMessage),
    (b"timegenerated", F::TimeGenerated),
    (b"correlationid", F::CorrelationId),
    (b"clientappused", F::ClientApp),
    (b"failurereason", F::FailureReason),
    (b"appdisplayname", F::AppName),
    (b"createddatetime", F::Created),
    (b"calleripaddress", F::CallerIp),
    (b"tokenissuertype", F::TokenIssuerType),
    (b"senderimagepath", F::SenderImagePath),
    (b"resourcetenantid", F::ResourceTenantId),
    (b"processimagepath", F::ProcessImagePath),
    (b"resultdescription", F::ResultDescription),
    (b"userprincipalname", F::Upn),
    (b"additionaldetails", F::AdditionalDetails),
    (b"authenticationprotocol", F::AuthProtocol),
];

/// Slots of the name table: the hash below puts each of the 38 names in a slot of its own
/// (`NAME_SLOTS` is built at compile time and fails to build if two ever share one).
const NAME_SLOT_COUNT: usize = 128;

/// A key's slot, from its length and its first, second and last bytes with bit 5 set (the
/// lower case of a letter; other bytes land anywhere, and the compare rules them out).
const fn name_slot(len: usize, first: u8, second: u8, last: u8) -> usize {
    (len * 2 + first as usize + second as usize * 7 + last as usize * 31) % NAME_SLOT_COUNT
}

/// For each slot, the index in `FIELD_NAMES` of the name hashed there, or `u8::MAX`.
static NAME_SLOTS: [u8; NAME_SLOT_COUNT] = {
    let mut slots = [u8::MAX; NAME_SLOT_COUNT];
    let mut i = 0;
    while i < FIELD_NAMES.len() {
        let name = FIELD_NAMES[i].0;
        let slot = name_slot(name.len(), name[0], name[1], name[name.len() - 1]);
        assert!(slots[slot] == u8::MAX, "two field names hash to one slot: change name_slot");
        slots[slot] = i as u8;
        i += 1;
    }
    slots
};

/// Classifies a bare key name, ASCII case-insensitively: one table lookup and at most one
/// compare, with no lower-cased copy. Most keys of a record are none of these names.
pub(super) fn field_of_name(k: &[u8]) -> F {
    let (Some(&first), Some(&second), Some(&last)) = (k.first(), k.get(1), k.last()) else {
        return F::Other;
    };
    let slot = name_slot(k.len(), first | 0x20, second | 0x20, last | 0x20);
    match NAME_SLOTS.get(slot).and_then(|&i| FIELD_NAMES.get(usize::from(i))) {
        Some(&(name, field)) if is_name(k, name) => field,
        _ => F::Other,
    }
}

/// Whether `k` is `name` (lower-case ASCII letters) in any casing. Setting bit 5 turns a
/// byte into a lower-case letter only when it is that letter in either case, so one OR
/// per word of eight bytes replaces `eq_ignore_ascii_case`'s two case conversions per byte.
fn is_name(k: &[u8], name: &[u8]) -> bool {
    const CASE: u64 = u64::from_ne_bytes([0x20; 8]);
    k.len() == name.len() && all_words(k, name, |w, n| w | CASE == n)
}

/// A map key, classified without allocating.
pub(crate) struct Key(pub F);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(field_of(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Last non-empty value wins: a later `null` does not erase an earlier value.
pub(super) fn set<'a>(slot: &mut LStr<'a>, v: LStr<'a>) {
    if v.0.is_some() {
        *slot = v;
    }
}

impl<'a> Obj<'a> {
    /// Sets a field from text (CSV cells).
    pub fn set_text(&mut self, f: F, v: Cow<'a, str>) {
        self.fields += 1;
        let l = LStr(Some(v));
        match f {
            F::ResultType => {
                self.result_type_seen = true;
                if let Some(c) = l.get().and_then(parse_code) {
                    self.result_type = Some(c);
                }
            }
            F::Status => {
                if let Some(s) = l.get() {
                    self.status = Some(Status::from_json_text(s));
                }
            }
            F::DeviceDetail => {
                if let Some(s) = l.get() {
                    self.device_detail = Some(DeviceDetail::from_json_text(s));
                }
            }
            F::Properties | F::Records | F::Value => {}
            other => {
                if let Some(slot) = self.slot(other) {
                    set(slot, l);
                }
            }
        }
    }

    /// The text field that `f` names, if it is one.
    pub(super) fn slot(&mut self, f: F) -> Option<&mut LStr<'a>> {
        Some(match f {
            F::Time => &mut self.time,
            F::TimeGenerated => &mut self.time_generated,
            F::Created => &mut self.created,
            F::Timestamp => &mut self.timestamp,
            F::ResultDescription => &mut self.result_description,
            F::TenantId => &mut self.tenant_id,
            F::AadTenantId => &mut self.aad_tenant_id,
            F::ResourceId => &mut self.resource_id,
            F::ResourceTenantId => &mut self.resource_tenant_id,
            F::CorrelationId => &mut self.correlation_id,
            F::Identity => &mut self.identity,
            F::CallerIp => &mut self.caller_ip,
            F::Ip => &mut self.ip,
            F::Upn => &mut self.upn,
            F::AppId => &mut self.app_id,
            F::AppName => &mut self.app_name,
            F::ClientApp => &mut self.client_app,
            F::AuthProtocol => &mut self.auth_protocol,
            F::TokenIssuerType => &mut self.token_issuer_type,
            F::Id => &mut self.id,
            F::EventMessage => {
                self.event_message_seen = true;
                &mut self.event_message
            }
            F::MessageType => &mut self.message_type,
            F::Subsystem => &mut self.subsystem,
            F::Category => &mut self.category,
            F::LogType => &mut self.log_type,
            F::ProcessImagePath => &mut self.process_image_path,
            F::SenderImagePath => &mut self.sender_image_path,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut o = Obj::default();
        ObjInPlace(&mut o).deserialize(d)?;
        Ok(o)
    }
}

/// An object decoded on the heap: what `parse_obj` returns. `Obj` is about a kilobyte, and
/// decoded by value it was moved a dozen times on its way out of serde (5 % of the reader
/// thread's instructions, in `memcpy`); decoded in place, only the box moves.
struct BoxedObj<'a>(Box<Obj<'a>>);

impl<'de> Deserialize<'de> for BoxedObj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut o = Box::<Obj<'de>>::default();
        ObjInPlace(&mut o).deserialize(d)?;
        Ok(BoxedObj(o))
    }
}

/// Decodes an object into a default `Obj` that the caller placed (see [`BoxedObj`]).
struct ObjInPlace<'o, 'de>(&'o mut Obj<'de>);

impl<'de> de::DeserializeSeed<'de> for ObjInPlace<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjInPlace<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let o = self.0;
        while let Some(Key(k)) = a.next_key::<Key>()? {
            o.fields += 1;
            match k {
                F::ResultType => {
                    o.result_type_seen = true;
                    if let Some(c) = a.next_value::<LCode>()?.0 {
                        o.result_type = Some(c);
                    }
                }
                F::Status => {
                    let st: Status<'de> = a.next_value()?;
                    o.status = Some(st);
                }
                F::ProcessId => {
                    o.process_id = a.next_value::<LCode>()?.0;
                }
                F::Properties => {
                    // A repeated `properties` replaces the earlier one whole.
                    if let Some(p) = a.next_value::<MaybeObj<'de>>()?.0 {
                        o.properties = Some(p);
                    }
                }
                F::Records => {
                    if let Some(v) = a.next_value::<RawList<'de>>()?.0 {
                        o.records = Some(v);
                    }
                }
                F::Value => {
                    if let Some(v) = a.next_value::<RawList<'de>>()?.0 {
                        o.value = Some(v);
                    }
                }
                F::DeviceDetail => {
                    o.device_detail = Some(a.next_value()?);
                }
                other => match o.slot(other) {
                    Some(slot) => set(slot, a.next_value()?),
                    None => {
                        a.next_value::<IgnoredAny>()?;
                    }
                },
            }
        }
        Ok(())
    }
}

/// `properties`: an object (or JSON text of one), or anything else (then ignored).
struct MaybeObj<'a>(Option<Box<Obj<'a>>>);

impl<'de> Deserialize<'de> for MaybeObj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeObj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                let BoxedObj(o) = BoxedObj::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(MaybeObj(Some(o)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeObj(None))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(MaybeObj(Obj::from_json_text(s).map(Box::new)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeObj(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeObj(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                MaybeObj::deserialize(d)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeObj(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeObj(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeObj(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeObj(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a JSON value did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonFail {
    /// The value stops before its end (a multi-line value, or a truncated line).
    Eof,
    /// Not JSON (or not an object where one was needed).
    Invalid,
    /// Not UTF-8.
    Utf8,
}

/// Decodes one object from the start of `bytes`, ignoring anything after it (trailing
/// garbage on a line is tolerated) except another object, which it notes
/// (`Obj::next_object`) so that the caller reads it as a record of its own.
pub(crate) fn parse_obj(bytes: &[u8]) -> Result<Box<Obj<'_>>, JsonFail> {
    // One vectorised UTF-8 check of the whole record, then a `str` reader that trusts it,
    // costs less than the slice reader's check of every string it keeps, one by one. Bytes
    // that are not UTF-8 keep the slice reader: it accepts them where they sit in a value
    // that is skipped, and the outcome must not depend on this shortcut.
    // The stream reader reads one value and says where it ended.
    let result = match std::str::from_utf8(bytes) {
        // The direct decoder answers for the common shape, and the serde path for the
        // rest (and for every error): both give the same object (see `direct.rs`).
        Ok(text) => match super::direct::decode(text) {
            Some(decoded) => Some(Ok(decoded)),
            None => parse_with_serde(text),
        },
        Err(_) => {
            let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<BoxedObj>();
            values.next().map(|r| r.map(|o| (o.0, values.byte_offset())))
        }
    };
    // Nothing but whitespace: as serde reports an empty input.
    let Some(result) = result else {
        return Err(JsonFail::Eof);
    };
    match result {
        Ok((mut o, end)) => {
            let rest = &bytes[end.min(bytes.len())..];
            let gap = rest.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b',')).count();
            if matches!(rest.get(gap), Some(b'{' | b'[')) {
                o.next_object = Some((end, end + gap));
            }
            Ok(o)
        }
        Err(e) if e.is_eof() => Err(JsonFail::Eof),
        Err(_) => {
            if std::str::from_utf8(bytes).is_err() {
                Err(JsonFail::Utf8)
            } else {
                Err(JsonFail::Invalid)
            }
        }
    }
}

/// The serde path of [`parse_obj`] for text: the object and the offset just past it.
pub(super) fn parse_with_serde(text: &str) -> Option<Result<(Box<Obj<'_>>, usize), serde_json::Error>> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<BoxedObj>();
    values.next().map(|r| r.map(|o| (o.0, values.byte_offset())))
}

/// [`parse_obj`], retried once when it fails on a copy whose lone UTF-16 surrogate escapes
/// (`\ud83d` of an emoji cut in half, a stray `\udc00`) read `\ufffd`: JSON allows them,
/// but serde rejects them in the strings it decodes, and one such field must not cost the
/// whole record. Only a failed decode pays for the search and the copy. The copy has the
/// same length as `bytes`, so offsets within it are offsets within the record; `f` gets
/// the result and the bytes it was decoded from.
///
/// A record with bytes that are not UTF-8 in a field it reads (a device name saved as
/// Windows-1252 by PowerShell 5.1) is retried likewise, each such byte read as `?`
/// ([`replace_invalid_utf8`]): one mis-encoded letter must not cost the sign-in either.
pub(crate) fn with_obj<R>(bytes: &[u8], f: impl for<'b> FnOnce(Result<Box<Obj<'b>>, JsonFail>, &'b [u8]) -> R) -> R {
    match parse_obj(bytes) {
        Err(JsonFail::Invalid) => match repair_lone_surrogates(bytes) {
            Some(fixed) => f(parse_obj(&fixed), &fixed),
            None => f(Err(JsonFail::Invalid), bytes),
        },
        Err(JsonFail::Utf8) => {
            let fixed = replace_invalid_utf8(bytes).into_owned();
            match parse_obj(&fixed) {
                Err(JsonFail::Invalid) => match repair_lone_surrogates(&fixed) {
                    Some(both) => match parse_obj(&both) {
                        Err(JsonFail::Invalid) => f(Err(JsonFail::Utf8), bytes),
                        r => f(r, &both),
                    },
                    None => f(Err(JsonFail::Utf8), bytes),
                },
                r => f(r, &fixed),
            }
        }
        r => f(r, bytes),
    }
}

/// `bytes` as text, each byte that is not part of valid UTF-8 read as `?`
/// ([`replace_invalid_utf8`]); validated once, and borrowed when it is UTF-8.
pub(crate) fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(String::from_utf8_lossy(&replace_invalid_utf8(bytes)).into_owned()),
    }
}

/// `bytes` with every byte that is not part of valid UTF-8 replaced by `?`: the same
/// length, so offsets within the copy are offsets within the original, and the same JSON
/// structure, as every such byte is above ASCII. Borrowed when there is none.
pub(crate) fn replace_invalid_utf8(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut at = 0;
    while at < bytes.len() {
        match std::str::from_utf8(&bytes[at..]) {
            Ok(_) => break,
            Err(e) => {
                let bad = at + e.valid_up_to();
                let len = e.error_len().unwrap_or(bytes.len() - bad);
                out.get_or_insert_with(|| bytes.to_vec())[bad..bad + len].fill(b'?');
                at = bad + len;
            }
        }
    }
    match out {
        Some(fixed) => std::borrow::Cow::Owned(fixed),
        None => std::borrow::Cow::Borrowed(bytes),
    }
}

/// `bytes` with every `\uXXXX` escape of a UTF-16 surrogate that has no partner replaced
/// by `\ufffd` (the same length); `None` when there is none.
fn repair_lone_surrogates(bytes: &[u8]) -> Option<Vec<u8>> {
    let hex4 = |at: usize| {
        let h = bytes.get(at..at + 4)?;
        let s = std::str::from_utf8(h).ok()?;
        u16::from_str_radix(s, 16).ok().filter(|_| h.iter().all(u8::is_ascii_hexdigit))
    };
    let is_low = |u: u16| (0xDC00..0xE000).contains(&u);
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    // A backslash last of all leaves `i` past the end.
    while let Some(k) = bytes.get(i..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let at = i + k;
        if bytes.get(at + 1) != Some(&b'u') {
            // Any other escape, `\\` included, is two bytes: what follows is text.
            i = at + 2;
            continue;
        }
        let Some(unit) = hex4(at + 2) else {
            i = at + 2;
            continue;
        };
        i = at + 6;
        if (0xD800..0xDC00).contains(&unit) {
            let paired = bytes.get(at + 6..at + 8) == Some(b"\\u") && hex4(at + 8).is_some_and(is_low);
            if paired {
                i = at + 12;
                continue;
            }
        } else if !is_low(unit) {
            continue;
        }
        out.get_or_insert_with(|| bytes.to_vec())[at + 2..at + 6].copy_from_slice(b"fffd");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    #[test]
    fn lone_surrogate_escapes_become_replacement_characters() {
        let fix = |s: &str| super::repair_lone_surrogates(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(fix(r#"{"a":"bob\udc00@x"}"#).as_deref(), Some(r#"{"a":"bob\ufffd@x"}"#));
        assert_eq!(fix(r#"{"a":"x \ud83d"}"#).as_deref(), Some(r#"{"a":"x \ufffd"}"#));
        assert_eq!(fix(r#"{"a":"\ud83d\ude00 \ud83dA"}"#).as_deref(), Some(r#"{"a":"\ud83d\ude00 \ufffdA"}"#));
        // A paired emoji, an escaped backslash before `ud83d`, other escapes: unchanged.
        assert_eq!(fix(r#"{"a":"\ud83d\ude00 \\ud83d \u00e9 \n"}"#), None);
        // A record cut after a backslash (the search stepped past the end and panicked).
        assert_eq!(fix(r#"{"a":"x\"#), None);
        assert_eq!(fix("\\"), None);
    }

    use super::*;

    /// `field_of` as it was before its fast paths: trim, CSV suffix split, lower-case match.
    fn field_of_reference(key: &str) -> F {
        let key = key.trim();
        let key = match key.find(" [") {
            Some(i) => &key[..i],
            None => key,
        };
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "time" => F::Time,
            "timegenerated" => F::TimeGenerated,
            "createddatetime" => F::Created,
            "timestamp" => F::Timestamp,
            "resulttype" => F::ResultType,
            "resultdescription" => F::ResultDescription,
            "tenantid" => F::TenantId,
            "aadtenantid" => F::AadTenantId,
            "resourceid" => F::ResourceId,
            "resourcetenantid" => F::ResourceTenantId,
            "correlationid" => F::CorrelationId,
            "identity" => F::Identity,
            "calleripaddress" => F::CallerIp,
            "ipaddress" => F::Ip,
            "userprincipalname" => F::Upn,
            "appid" => F::AppId,
            "appdisplayname" => F::AppName,
            "clientappused" => F::ClientApp,
            "authenticationprotocol" => F::AuthProtocol,
            "tokenissuertype" => F::TokenIssuerType,
            "id" => F::Id,
            "status" => F::Status,
            "properties" => F::Properties,
            "records" => F::Records,
            "value" => F::Value,
            "eventmessage" => F::EventMessage,
            "messagetype" => F::MessageType,
            "subsystem" => F::Subsystem,
            "category" => F::Category,
            "type" => F::LogType,
            "processimagepath" => F::ProcessImagePath,
            "senderimagepath" => F::SenderImagePath,
            "processid" => F::ProcessId,
            "devicedetail" => F::DeviceDetail,
            "errorcode" => F::ErrorCode,
            "failurereason" => F::FailureReason,
            "additionaldetails" => F::AdditionalDetails,
            "displayname" => F::DisplayName,
            _ => F::Other,
        }
    }

    const NAMES: &[&str] = &[
        "time",
        "TimeGenerated",
        "createdDateTime",
        "timestamp",
        "resultType",
        "ResultDescription",
        "tenantId",
        "resourceId",
        "resourceTenantId",
        "AADTenantId",
        "correlationId",
        "identity",
        "callerIpAddress",
        "ipAddress",
        "userPrincipalName",
        "appId",
        "appDisplayName",
        "clientAppUsed",
        "authenticationProtocol",
        "tokenIssuerType",
        "id",
        "Status",
        "properties",
        "records",
        "value",
        "eventMessage",
        "messageType",
        "subsystem",
        "category",
        "Type",
        "processImagePath",
        "senderImagePath",
        "processID",
        "deviceDetail",
        "errorCode",
        "failureReason",
        "additionalDetails",
        "displayName",
        "homeTenantId",
        "riskDetail",
        "",
        "x",
    ];

    #[test]
    fn every_name_is_recognised() {
        let distinct: std::collections::HashSet<String> = NAMES.iter().map(|n| format!("{:?}", field_of(n))).collect();
        // 38 fields plus `Other` (shared by the last four names).
        assert_eq!(distinct.len(), 39, "{distinct:?}");
    }

    proptest::proptest! {
        #[test]
        fn fast_path_agrees_with_reference(
            name in proptest::sample::select(NAMES),
            pre in "[ \t\u{b}\u{a0}\u{3000}]{0,2}",
            post in "( \\[UTC\\]|\\[x|[ \t\u{b}\u{a0}]|Z){0,2}",
            upper in proptest::bool::ANY,
        ) {
            let name = if upper { name.to_ascii_uppercase() } else { name.to_string() };
            let key = format!("{pre}{name}{post}");
            proptest::prop_assert_eq!(field_of(&key), field_of_reference(&key), "{:?}", key);
        }

        /// A name with one byte replaced by any printable ASCII byte: the case-folding
        /// compare must tell `@`/`` ` `` and `[`/`{` (one bit 5 apart) from letters.
        #[test]
        fn fast_path_agrees_on_near_misses(
            name in proptest::sample::select(NAMES),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in 0x20u8..0x7f,
        ) {
            let mut key = name.as_bytes().to_vec();
            if !key.is_empty() {
                let i = at.index(key.len());
                key[i] = byte;
            }
            let key = String::from_utf8(key).unwrap_or_default();
            proptest::prop_assert_eq!(field_of(&key), field_of_reference(&key), "{:?}", key);
        }

        /// A name in any mix of cases with whitespace, a bracket or other text anywhere
        /// after it: the word-at-a-time tests cover every byte of keys of every length
        /// (a space at byte 9 of a 12-byte key sits in the overlapping last word).
        #[test]
        fn fast_path_agrees_on_names_with_text_after(
            name in proptest::sample::select(NAMES),
            cases in proptest::prelude::any::<u32>(),
            after in proptest::collection::vec(
                proptest::sample::select(&[" ", "\t", "\u{b}", "\u{1f}", "\u{7f}", "\u{85}", "\u{a0}", "\u{3000}", "[", " [UTC]", "x", "é"][..]),
                0..4,
            ),
            tail in "\\PC{0,6}",
        ) {
            let name: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| if cases >> (i % 32) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            let key = format!("{name}{}{tail}", after.concat());
            proptest::prop_assert_eq!(field_of(&key), field_of_reference(&key), "{:?}", key);
        }

        #[test]
        fn fast_path_agrees_on_any_text(key in "\\PC{0,40}") {
            proptest::prop_assert_eq!(field_of(&key), field_of_reference(&key));
        }
    }
}
