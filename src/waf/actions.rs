//! A rule's actions, typed at load: metadata, flow (`chain`, `skip`, `skipAfter`), the
//! disruptive action, `setvar`, `ctl` and `capture`.

use super::macros::Template;
use super::rule::Target;
use super::seclang::ActionSpec;
use super::transforms::{self, Transform};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruptive {
    Pass,
    Block,
    Deny,
    Drop,
    Allow,
    Redirect,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SetVarOp {
    Set,
    Add,
    Sub,
    Delete,
}

#[derive(Debug, Clone)]
pub struct SetVar {
    pub collection: String,
    /// The collection's variable slot, resolved at load.
    pub slot: Option<usize>,
    pub key: Template,
    /// A literal key's hash and number.
    pub known: Option<super::collections::KnownKey>,
    pub op: SetVarOp,
    pub value: Template,
}

#[derive(Debug, Clone)]
pub enum Ctl {
    RuleEngineOff,
    RuleEngineDetectionOnly,
    RuleEngineOn,
    RemoveById(Vec<(u64, u64)>),
    RemoveByTag(String),
    /// Rule id ranges and the targets they stop inspecting, compiled at load.
    RemoveTargetById(Vec<(u64, u64)>, Vec<Target>),
    RemoveTargetByTag(String, Vec<Target>),
    RequestBodyProcessor(String),
    ForceRequestBodyVariable,
    RequestBodyAccess(bool),
    /// `ctl` settings about audit logging and the like: no effect on decisions.
    NoEffect,
}

/// Everything a rule does besides matching. What a transaction reads for every rule and
/// match comes first (`repr(C)` keeps the order; see [`super::rule::Rule`]).
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct Actions {
    pub id: u64,
    pub skip: u32,
    pub status: Option<u16>,
    pub disruptive: Option<Disruptive>,
    pub log: Option<bool>,
    pub capture: bool,
    pub multi_match: bool,
    pub chain: bool,
    pub phase: Option<u8>,
    pub transforms_reset: bool,
    pub setvars: Vec<SetVar>,
    pub ctls: Vec<Ctl>,
    /// `t:` functions; `t:none` seen means the default chain is not inherited.
    pub transforms: Vec<Transform>,
    pub skip_after: Option<String>,
    pub msg: Option<Template>,
    pub logdata: Option<Template>,
    pub tags: Vec<String>,
    pub severity: Option<String>,
}

fn ranges(text: &str) -> Result<Vec<(u64, u64)>, String> {
    text.split([',', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let num = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("`{p}` is not a rule id"))
            };
            Ok(match p.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(p)?, num(p)?),
            })
        })
        .collect()
}

fn ctl(value: &str) -> Result<Ctl, String> {
    let (name, arg) = value
        .split_once('=')
        .ok_or_else(|| format!("ctl:{value} has no `=`"))?;
    Ok(match name {
        "ruleEngine" => match arg {
            "Off" => Ctl::RuleEngineOff,
            "DetectionOnly" => Ctl::RuleEngineDetectionOnly,
            "On" => Ctl::RuleEngineOn,
            other => return Err(format!("ctl:ruleEngine={other}?")),
        },
        "ruleRemoveById" => Ctl::RemoveById(ranges(arg)?),
        "ruleRemoveByTag" => Ctl::RemoveByTag(arg.to_string()),
        "ruleRemoveTargetById" | "ruleRemoveTargetByTag" => {
            let (which, target) = arg
                .split_once(';')
                .ok_or_else(|| format!("ctl:{name} needs `id;TARGET`"))?;
            let targets = super::seclang::rule::variables(target)?
                .iter()
                .map(Target::compile)
                .collect::<Result<Vec<_>, _>>()?;
            if name == "ruleRemoveTargetById" {
                Ctl::RemoveTargetById(ranges(which)?, targets)
            } else {
                Ctl::RemoveTargetByTag(which.to_string(), targets)
            }
        }
        "requestBodyProcessor" => Ctl::RequestBodyProcessor(arg.to_ascii_uppercase()),
        "forceRequestBodyVariable" => Ctl::ForceRequestBodyVariable,
        "requestBodyAccess" => Ctl::RequestBodyAccess(arg.eq_ignore_ascii_case("on")),
        "auditEngine" | "auditLogParts" | "debugLogLevel" | "requestBodyLimit"
        | "responseBodyAccess" | "responseBodyLimit" | "hashEngine" => Ctl::NoEffect,
        other => return Err(format!("ctl:{other} is not supported yet")),
    })
}

fn setvar(value: &str) -> Result<SetVar, String> {
    let (target, op, val) = if let Some(t) = value.strip_prefix('!') {
        (t, SetVarOp::Delete, "")
    } else {
        match value.split_once('=') {
            Some((t, v)) => match v.as_bytes().first() {
                Some(b'+') => (t, SetVarOp::Add, &v[1..]),
                Some(b'-') => (t, SetVarOp::Sub, &v[1..]),
                _ => (t, SetVarOp::Set, v),
            },
            None => (value, SetVarOp::Set, "1"),
        }
    };
    let (collection, key) = target
        .split_once('.')
        .ok_or_else(|| format!("setvar:{value}: expected COLLECTION.key"))?;
    let key = Template::parse(&key.to_ascii_lowercase());
    Ok(SetVar {
        slot: super::macros::slot_of(collection),
        collection: collection.to_ascii_uppercase(),
        known: key.literal().map(super::collections::KnownKey::of),
        key,
        op,
        value: Template::parse(val),
    })
}

impl Actions {
    pub fn parse(list: &[ActionSpec]) -> Result<Actions, String> {
        let mut a = Actions::default();
        for spec in list {
            let v = spec.value.as_deref().unwrap_or("");
            match spec.name {
                "id" => a.id = v.parse().map_err(|_| format!("id:{v} is not a number"))?,
                "phase" => {
                    a.phase = Some(match v {
                        "request" => 2,
                        "response" => 4,
                        "logging" => 5,
                        n => n
                            .parse()
                            .ok()
                            .filter(|p| (1..=5).contains(p))
                            .ok_or_else(|| format!("phase:{n} is not 1-5"))?,
                    })
                }
                "chain" => a.chain = true,
                "pass" => a.disruptive = Some(Disruptive::Pass),
                "block" => a.disruptive = Some(Disruptive::Block),
                "deny" => a.disruptive = Some(Disruptive::Deny),
                "drop" => a.disruptive = Some(Disruptive::Drop),
                "allow" => a.disruptive = Some(Disruptive::Allow),
                "redirect" => a.disruptive = Some(Disruptive::Redirect),
                "status" => a.status = v.parse().ok(),
                "log" => a.log = Some(true),
                "nolog" => a.log = Some(false),
                "capture" => a.capture = true,
                "multiMatch" => a.multi_match = true,
                "t" => {
                    if v.eq_ignore_ascii_case("none") {
                        a.transforms.clear();
                        a.transforms_reset = true;
                    } else {
                        a.transforms.push(
                            transforms::lookup(v)
                                .ok_or_else(|| format!("t:{v} is not supported"))?,
                        );
                    }
                }
                "setvar" => a.setvars.push(setvar(v)?),
                "ctl" => a.ctls.push(ctl(v)?),
                "skip" => a.skip = v.parse().map_err(|_| format!("skip:{v} is not a number"))?,
                "skipAfter" => a.skip_after = Some(v.to_string()),
                "msg" => a.msg = Some(Template::parse(v)),
                "logdata" => a.logdata = Some(Template::parse(v)),
                "tag" => a.tags.push(v.to_string()),
                "severity" => a.severity = Some(v.to_string()),
                // Metadata, audit logging and persistence with no effect on decisions here.
                "ver"
                | "rev"
                | "maturity"
                | "accuracy"
                | "auditlog"
                | "noauditlog"
                | "initcol"
                | "expirevar"
                | "deprecatevar"
                | "setsid"
                | "setuid"
                | "setrsc"
                | "setenv"
                | "sanitiseArg"
                | "sanitiseMatched"
                | "sanitiseMatchedBytes"
                | "sanitiseRequestHeader"
                | "sanitiseResponseHeader"
                | "xmlns"
                | "append"
                | "prepend" => {}
                other => return Err(format!("action `{other}` is not supported yet")),
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waf::seclang::rule::actions;

    #[test]
    fn typed_actions() {
        let a = Actions::parse(
            &actions("id:942100,phase:2,block,capture,t:none,t:utf8toUnicode,t:urlDecodeUni,setvar:'tx.sql_injection_score=+%{tx.critical_anomaly_score}',setvar:!tx.x,ctl:ruleRemoveTargetById=942100;ARGS:pwd,skipAfter:END,nolog").unwrap(),
        )
        .unwrap();
        assert_eq!(
            (a.id, a.phase, a.disruptive),
            (942100, Some(2), Some(Disruptive::Block))
        );
        assert!(a.transforms_reset && a.transforms.len() == 2 && a.capture);
        assert_eq!(a.setvars[0].op, SetVarOp::Add);
        assert_eq!(a.setvars[1].op, SetVarOp::Delete);
        assert!(
            matches!(&a.ctls[0], Ctl::RemoveTargetById(r, t) if r == &[(942100, 942100)] && t.len() == 1 && t[0].name() == "ARGS" && t[0].selector.as_ref().is_some_and(|s| s.matches("pwd")))
        );
        assert_eq!(a.log, Some(false));
    }
}
