//! CEL functions of agentgateway's dialect that configs use beyond the standard library:
//! `random()` (fault injection) and `cidr("10.0.0.0/8").containsIP(source.address)` (address
//! rules). `cidr` checks its argument and gives the range back as a string; `containsIP` takes
//! such a range as its receiver.

use std::net::IpAddr;

use cel::common::types::{CelBool, CelString, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{Env, ExecutionError};

pub(crate) fn register(env: &mut Env) {
    // Declared once on a fresh environment: these cannot clash.
    let _ = env.add_overload("random", "random()", Vec::new(), crate::random::cel_random);
    let _ = env.add_overload("cidr", "cidr(string)", vec![STRING_TYPE], cidr);
    let _ =
        env.add_member_overload("containsIP", "string_containsIP(string)", STRING_TYPE, vec![STRING_TYPE], contains_ip);
}

/// A range: an address and a prefix length within the address's size.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn contains(range: (IpAddr, u8), ip: IpAddr) -> bool {
    let (net, len) = range;
    let (net, ip, bits) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        (IpAddr::V6(n), IpAddr::V4(i)) => (u128::from(n), u128::from(i.to_ipv6_mapped()), 128),
        (IpAddr::V4(n), IpAddr::V6(i)) => match i.to_ipv4_mapped() {
            Some(i) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
            None => return false,
        },
    };
    let shift = bits - u32::from(len);
    shift >= bits || (net >> shift) == (ip >> shift)
}

fn string_arg<'a>(args: &'a [CowVal<'_, '_>], i: usize, function: &str) -> Result<&'a str, ExecutionError> {
    args.get(i)
        .and_then(|a| a.as_ref().downcast_ref::<CelString<'_>>())
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::function_error(function, "expects a string"))
}

fn cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg(&args, 0, "cidr")?;
    if parse_cidr(s).is_none() {
        return Err(ExecutionError::function_error("cidr", format!("`{s}` is not an address range")));
    }
    Ok(CowVal::owned(CelString::from(s.trim().to_string())))
}

fn contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let range = parse_cidr(string_arg(&args, 0, "containsIP")?)
        .ok_or_else(|| ExecutionError::function_error("containsIP", "the receiver is not an address range"))?;
    let ip: IpAddr = string_arg(&args, 1, "containsIP")?
        .trim()
        .parse()
        .map_err(|_| ExecutionError::function_error("containsIP", "not an IP address"))?;
    Ok(CowVal::owned(CelBool::from(contains(range, ip))))
}

#[cfg(test)]
mod tests {
    use crate::expr::{Expression, Inputs};

    fn eval(src: &str) -> Option<bool> {
        match Expression::compile(src).unwrap().eval(&Inputs::default())? {
            cel::Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    #[test]
    fn address_ranges() {
        assert_eq!(eval(r#"cidr("127.0.0.1/8").containsIP("127.3.4.5")"#), Some(true));
        assert_eq!(eval(r#"cidr("10.0.0.0/8").containsIP("11.0.0.1")"#), Some(false));
        assert_eq!(eval(r#"cidr("0.0.0.0/0").containsIP("8.8.8.8")"#), Some(true));
        assert_eq!(eval(r#"cidr("192.168.1.7/32").containsIP("192.168.1.7")"#), Some(true));
        assert_eq!(eval(r#"cidr("fd00::/8").containsIP("fd12::1")"#), Some(true));
        assert_eq!(eval(r#"cidr("127.0.0.0/8").containsIP("::ffff:127.0.0.1")"#), Some(true));
        assert_eq!(eval(r#"cidr("::/0").containsIP("1.2.3.4")"#), Some(true));
        assert_eq!(eval(r#"cidr("10.0.0.0/33").containsIP("10.0.0.1")"#), None, "an error, not a panic");
        assert_eq!(eval(r#"cidr("10.0.0.0/8").containsIP("nope")"#), None);
    }
}
