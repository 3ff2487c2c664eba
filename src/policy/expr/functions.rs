//! ngrok's CEL functions. Header and parameter lookups read one hidden variable from the
//! request scope, so a call costs one header lookup, not a map of all headers.

use super::scope::{QUERY_PARAM, REQ_HEADER, RES_HEADER};
use cel::{Context, ExecutionError, FunctionContext, Value};
use std::net::IpAddr;
use std::sync::Arc;

fn lookup(ftx: &FunctionContext, prefix: &str, name: &str) -> Result<Value, ExecutionError> {
    let key = format!("{prefix}{}", name.to_ascii_lowercase());
    let val = ftx
        .ptx
        .get_variable(&key)
        .ok_or_else(|| ftx.error("not available in this phase"))?;
    Value::try_from(val.as_ref()).map_err(|_| ftx.error("unconvertible value"))
}

fn lookup_param(ftx: &FunctionContext, name: &str) -> Result<Value, ExecutionError> {
    let key = format!("{QUERY_PARAM}{name}");
    let val = ftx
        .ptx
        .get_variable(&key)
        .ok_or_else(|| ftx.error("not available in this phase"))?;
    Value::try_from(val.as_ref()).map_err(|_| ftx.error("unconvertible value"))
}

fn non_empty(v: Value) -> Value {
    Value::Bool(matches!(v, Value::List(l) if !l.is_empty()))
}

fn get_req_header(ftx: &FunctionContext, name: Arc<String>) -> Result<Value, ExecutionError> {
    lookup(ftx, REQ_HEADER, &name)
}

fn has_req_header(ftx: &FunctionContext, name: Arc<String>) -> Result<Value, ExecutionError> {
    lookup(ftx, REQ_HEADER, &name).map(non_empty)
}

fn get_res_header(ftx: &FunctionContext, name: Arc<String>) -> Result<Value, ExecutionError> {
    lookup(ftx, RES_HEADER, &name)
}

fn has_res_header(ftx: &FunctionContext, name: Arc<String>) -> Result<Value, ExecutionError> {
    lookup(ftx, RES_HEADER, &name).map(non_empty)
}

fn get_query_param(ftx: &FunctionContext, name: Arc<String>) -> Result<Value, ExecutionError> {
    lookup_param(ftx, &name)
}

fn has_query_param(ftx: &FunctionContext, name: Arc<String>) -> Result<Value, ExecutionError> {
    lookup_param(ftx, &name).map(non_empty)
}

fn parse_ip(ftx: &FunctionContext, ip: &str) -> Result<IpAddr, ExecutionError> {
    ip.trim()
        .parse()
        .map_err(|_| ftx.error(format!("`{ip}` is not an IP address")))
}

fn cidr_contains(ftx: &FunctionContext, ip: IpAddr, cidr: &str) -> Result<bool, ExecutionError> {
    let net: ipnet::IpNet = match cidr.trim().parse() {
        Ok(n) => n,
        Err(_) => {
            let single: IpAddr = cidr
                .trim()
                .parse()
                .map_err(|_| ftx.error(format!("`{cidr}` is not a CIDR")))?;
            ipnet::IpNet::from(single)
        }
    };
    Ok(net.contains(&ip))
}

fn in_cidr_range(
    ftx: &FunctionContext,
    ip: Arc<String>,
    cidr: Arc<String>,
) -> Result<Value, ExecutionError> {
    let ip = parse_ip(ftx, &ip)?;
    cidr_contains(ftx, ip, &cidr).map(Value::Bool)
}

fn in_cidr_ranges(
    ftx: &FunctionContext,
    ip: Arc<String>,
    cidrs: Arc<Vec<Value>>,
) -> Result<Value, ExecutionError> {
    let ip = parse_ip(ftx, &ip)?;
    for c in cidrs.iter() {
        let Value::String(c) = c else {
            return Err(ftx.error("inCidrRanges wants a list of strings"));
        };
        if cidr_contains(ftx, ip, c)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

pub fn register(root: &mut Context<'static, 'static>) {
    let result = (|| {
        root.add_function("getReqHeader", get_req_header)?;
        root.add_function("hasReqHeader", has_req_header)?;
        root.add_function("getResHeader", get_res_header)?;
        root.add_function("hasResHeader", has_res_header)?;
        root.add_function("getQueryParam", get_query_param)?;
        root.add_function("hasQueryParam", has_query_param)?;
        root.add_function("inCidrRange", in_cidr_range)?;
        root.add_function("inCidrRanges", in_cidr_ranges)
    })();
    result.expect("ngrok function names do not clash with CEL's standard library");
}
