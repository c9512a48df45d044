//! `spec.ipFamilyPolicy` and `spec.ipFamilies` on this single-stack IPv4
//! cluster, judged as kube-apiserver 1.32 judges them before it allocates
//! (its `initIPFamilyFields`): first the fields on their own, then against
//! the families the cluster serves. kube-apiserver runs this before the
//! rest of validation and answers with these errors alone, so this does
//! too (see [`super::validate`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use switchyard_api::resources::{service_type, Service};

use super::super::field::{FieldError, FieldErrors};
use super::super::golang;

const FAMILIES: &[&str] = &["IPv4", "IPv6"];
const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
/// The one family this cluster allocates from (`--service-cidr` is IPv4).
const SERVED: &str = "IPv4";

pub(super) fn check(svc: &Service) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if svc.service_type() == service_type::EXTERNAL_NAME {
        return errs;
    }
    let families = strings(svc, "ipFamilies");
    let policy = svc
        .spec
        .kept
        .get("ipFamilyPolicy")
        .and_then(|v| v.as_str())
        .unwrap_or("SingleStack");
    let ips = cluster_ips(svc);
    let Some(parsed) = parse_all(&ips) else {
        // An entry that is no IP is reported by the rest of validation.
        return errs;
    };
    on_their_own(&mut errs, &families, policy);
    dual_stack_ips(&mut errs, &ips, &parsed, &families, svc.is_headless());
    if !errs.is_empty() {
        return errs;
    }
    single_stack_policy(&mut errs, &ips, &parsed, &families, policy);
    if !errs.is_empty() || (svc.is_headless() && svc.spec.selector.is_none()) {
        // A headless Service without selector may name any family.
        return errs;
    }
    if policy == "RequireDualStack" {
        errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            policy,
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in families.iter().enumerate() {
        if family != SERVED {
            errs.push(FieldError::invalid(
                format!("spec.ipFamilies[{i}]"),
                family.as_str(),
                "not configured on this cluster",
            ));
        }
    }
    errs
}

/// Supported values, no family twice.
fn on_their_own(errs: &mut FieldErrors, families: &[String], policy: &str) {
    let mut seen = BTreeSet::new();
    for (i, family) in families.iter().enumerate() {
        let path = format!("spec.ipFamilies[{i}]");
        if !FAMILIES.contains(&family.as_str()) {
            errs.push(FieldError::not_supported(&path, family.as_str(), FAMILIES));
        }
        if !seen.insert(family) {
            errs.push(FieldError::duplicate(&path, family.as_str()));
        }
    }
    if !POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            "spec.ipFamilyPolicy",
            policy,
            POLICIES,
        ));
    }
}

/// At most two cluster IPs, one of each family, each of the family named
/// at its index.
fn dual_stack_ips(
    errs: &mut FieldErrors,
    ips: &[String],
    parsed: &[IpAddr],
    families: &[String],
    headless: bool,
) {
    let all = || golang::value(golang::string_slice(ips));
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            all(),
            "may only hold up to 2 values",
        ));
    }
    if parsed.len() == 2 && parsed[0].is_ipv6() == parsed[1].is_ipv6() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            all(),
            "may specify no more than one IP for each IP family",
        ));
    }
    if headless {
        return;
    }
    for (i, (ip, family)) in ips.iter().zip(families).enumerate() {
        let want_v6 = match family.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            _ => continue,
        };
        if parsed.get(i).is_some_and(|p| p.is_ipv6() != want_v6) {
            let want = if want_v6 { "IPv6" } else { "IPv4" };
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip.as_str(),
                format!("expected an {want} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
}

/// SingleStack with two of anything; a cluster IP of a family not served
/// where no family is named for it.
fn single_stack_policy(
    errs: &mut FieldErrors,
    ips: &[String],
    parsed: &[IpAddr],
    families: &[String],
    policy: &str,
) {
    if policy == "SingleStack" {
        let two = |what: &str| {
            FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy,
                format!("must be 'RequireDualStack' or 'PreferDualStack' when multiple {what} are specified"),
            )
        };
        if ips.len() == 2 {
            errs.push(two("cluster IPs"));
        }
        if families.len() == 2 {
            errs.push(two("IP families"));
        }
    }
    for (i, ip) in parsed.iter().enumerate().skip(families.len()) {
        if ip.is_ipv6() {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                golang::value(golang::string_slice(ips)),
                "IPv6 is not configured on this cluster",
            ));
        }
    }
}

/// `clusterIP` alone stands for `clusterIPs` (kube-apiserver normalizes one
/// into the other before this).
fn cluster_ips(svc: &Service) -> Vec<String> {
    match (&svc.spec.cluster_ips[..], svc.spec.cluster_ip.as_deref()) {
        ([], Some(ip)) if !ip.is_empty() => vec![ip.to_string()],
        (ips, _) => ips.to_vec(),
    }
}

/// The cluster IPs as addresses (none for a headless Service); `None`
/// when one is not an address.
fn parse_all(ips: &[String]) -> Option<Vec<IpAddr>> {
    if ips.first().is_some_and(|ip| ip == "None") {
        return Some(Vec::new());
    }
    ips.iter().map(|ip| ip.parse().ok()).collect()
}

fn strings(svc: &Service, key: &str) -> Vec<String> {
    svc.spec
        .kept
        .get(key)
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
