//! One borrowed, typed view over every JSON object shape (A1, A2, A3, Passport ndjson).
//!
//! Why a hand-written map visitor rather than `#[derive(Deserialize)]`: real exports repeat
//! keys (Graph pages repeat `homeTenantId`, ...) and drift in casing (`resultType` /
//! `ResultType`, `Level` / `level`); derive rejects duplicates of fields it reads and
//! needs an alias per spelling. Here keys are matched case-insensitively, a repeated key
//! simply overwrites (last non-null wins), and every unknown value is skipped with
//! `IgnoredAny` without building anything. Strings borrow from the input unless they
//! contain escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

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
                            if let Some(c) = a.next_value::<LCode>()?.0 {
                                st.error_code = Some(c);
                            }
                        }
                        F::FailureReason => set(&mut st.failure_reason, a.next_value()?),
                        F::AdditionalDetails => set(&mut st.additional_details, a.next_value()?),
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
            Ok(st) => Status {
                error_code: st.error_code,
                failure_reason: st.failure_reason.into_static(),
                additional_details: st.additional_details.into_static(),
            },
            Err(_) => Status::default(),
        }
    }
}

/// `deviceDetail` (only its display name is used).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DeviceDetail<'a> {
    pub display_name: LStr<'a>,
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
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(DeviceDetail::default())
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
    pub time: LStr<'a>,
    pub time_generated: LStr<'a>,
    pub created: LStr<'a>,
    pub timestamp: LStr<'a>,
    pub result_type: Option<u32>,
    pub result_type_seen: bool,
    pub result_description: LStr<'a>,
    pub tenant_id: LStr<'a>,
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
    pub process_image_path: LStr<'a>,
    pub sender_image_path: LStr<'a>,
    pub device_detail: Option<DeviceDetail<'a>>,
    pub fields: u32,
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
    ProcessImagePath,
    SenderImagePath,
    DeviceDetail,
    ErrorCode,
    FailureReason,
    AdditionalDetails,
    DisplayName,
    Other,
}

/// Classifies a key (or a CSV header cell such as `TimeGenerated [UTC]`).
pub(crate) fn field_of(key: &str) -> F {
    let key = key.trim();
    // Portal CSV headers carry a unit / zone suffix: "TimeGenerated [UTC]".
    let key = match key.find(" [") {
        Some(i) => &key[..i],
        None => key,
    };
    let mut buf = [0u8; 32];
    let kb = key.as_bytes();
    if kb.len() > buf.len() {
        return F::Other;
    }
    for (d, s) in buf.iter_mut().zip(kb) {
        *d = s.to_ascii_lowercase();
    }
    match &buf[..kb.len()] {
        b"time" => F::Time,
        b"timegenerated" => F::TimeGenerated,
        b"createddatetime" => F::Created,
        b"timestamp" => F::Timestamp,
        b"resulttype" => F::ResultType,
        b"resultdescription" => F::ResultDescription,
        b"tenantid" => F::TenantId,
        b"resourceid" => F::ResourceId,
        b"resourcetenantid" => F::ResourceTenantId,
        b"correlationid" => F::CorrelationId,
        b"identity" => F::Identity,
        b"calleripaddress" => F::CallerIp,
        b"ipaddress" => F::Ip,
        b"userprincipalname" => F::Upn,
        b"appid" => F::AppId,
        b"appdisplayname" => F::AppName,
        b"clientappused" => F::ClientApp,
        b"authenticationprotocol" => F::AuthProtocol,
        b"tokenissuertype" => F::TokenIssuerType,
        b"id" => F::Id,
        b"status" => F::Status,
        b"properties" => F::Properties,
        b"records" => F::Records,
        b"value" => F::Value,
        b"eventmessage" => F::EventMessage,
        b"messagetype" => F::MessageType,
        b"subsystem" => F::Subsystem,
        b"category" => F::Category,
        b"processimagepath" => F::ProcessImagePath,
        b"senderimagepath" => F::SenderImagePath,
        b"devicedetail" => F::DeviceDetail,
        b"errorcode" => F::ErrorCode,
        b"failurereason" => F::FailureReason,
        b"additionaldetails" => F::AdditionalDetails,
        b"displayname" => F::DisplayName,
        _ => F::Other,
    }
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
fn set<'a>(slot: &mut LStr<'a>, v: LStr<'a>) {
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
            F::Properties | F::Records | F::Value | F::DeviceDetail => {}
            other => {
                if let Some(slot) = self.slot(other) {
                    set(slot, l);
                }
            }
        }
    }

    fn slot(&mut self, f: F) -> Option<&mut LStr<'a>> {
        Some(match f {
            F::Time => &mut self.time,
            F::TimeGenerated => &mut self.time_generated,
            F::Created => &mut self.created,
            F::Timestamp => &mut self.timestamp,
            F::ResultDescription => &mut self.result_description,
            F::TenantId => &mut self.tenant_id,
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
            F::ProcessImagePath => &mut self.process_image_path,
            F::SenderImagePath => &mut self.sender_image_path,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut o = Obj::default();
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
                        F::Properties => {
                            let p: MaybeObj<'de> = a.next_value()?;
                            if let Some(p) = p.0 {
                                o.properties = Some(Box::new(p));
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
                Ok(o)
            }
        }
        d.deserialize_map(V)
    }
}

/// `properties`: an object, or anything else (then ignored).
struct MaybeObj<'a>(Option<Obj<'a>>);

impl<'de> Deserialize<'de> for MaybeObj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeObj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                Obj::deserialize(de::value::MapAccessDeserializer::new(a)).map(|o| MaybeObj(Some(o)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeObj(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MaybeObj(None))
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
/// garbage on a line is tolerated).
pub(crate) fn parse_obj(bytes: &[u8]) -> Result<Obj<'_>, JsonFail> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match Obj::deserialize(&mut de) {
        Ok(o) => Ok(o),
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
