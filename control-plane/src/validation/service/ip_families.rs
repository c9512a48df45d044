//! `spec.ipFamilyPolicy`, `spec.ipFamilies` and how they square with
//! `spec.clusterIPs` and the families the cluster serves (its
//! `--service-cidr`), settled as kube-apiserver 1.32 settles them before
//! it allocates (its `initIPFamilyFields`): the fields judged on their own,
//! the policy defaulted, an update's secondary family released or kept,
//! families inferred from the cluster IPs, then checked against the
//! cluster and completed (a dual-stack policy on a dual-stack cluster
//! gets both families). kube-apiserver runs this before the rest of
//! validation and answers with these errors alone, so this does too.

use std::collections::BTreeSet;
use std::net::IpAddr;

use switchyard_api::resources::{service_type, Service};

use super::super::field::{FieldError, FieldErrors};
use super::super::golang;
use crate::ip_family::IpFamily;

const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
const SINGLE_STACK: &str = "SingleStack";
const REQUIRE_DUAL_STACK: &str = "RequireDualStack";
const PREFER_DUAL_STACK: &str = "PreferDualStack";

/// Judges and completes `svc`'s family fields; `served` are the cluster's
/// families, primary first. On errors `svc` must be dropped.
pub fn settle(svc: &mut Service, old: Option<&Service>, served: &[IpFamily]) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if svc.service_type() == service_type::EXTERNAL_NAME {
        // No addresses: validation refuses families given to it.
        return errs;
    }
    let mut fields = Fields::read(svc);
    let Some(parsed) = parse_all(&fields.ips) else {
        // An entry that is no IP is reported by the rest of validation.
        return errs;
    };
    on_their_own(&mut errs, &fields);
    dual_stack_ips(&mut errs, &fields, &parsed, svc.is_headless());
    if !errs.is_empty() {
        return errs;
    }
    let headless_selectorless = svc.is_headless() && svc.spec.selector.is_none();
    let old_fields = old
        .filter(|o| o.service_type() != service_type::EXTERNAL_NAME)
        .map(Fields::read);
    let same_type = old.is_some_and(|o| o.service_type() == svc.service_type());
    if same_type
        && old_fields
            .as_ref()
            .is_some_and(|o| fields.unchanged_prefer_dual_stack(o))
    {
        return errs;
    }
    fields.default_policy(headless_selectorless, old_fields.as_ref());
    if let Some(old) = &old_fields {
        release_or_keep_secondary(&mut errs, &mut fields, old);
    }
    single_stack_policy(&mut errs, &fields);
    infer_families(&mut errs, &mut fields, &parsed, served);
    if !errs.is_empty() {
        return errs;
    }
    if headless_selectorless {
        // Any family goes, and a dual-stack policy gets both, served or not.
        if fields.families.is_empty() {
            fields.families.push(served[0]);
        }
        fields.add_second_family_unless_single_stack();
        fields.write(svc);
        return errs;
    }
    if fields.policy == REQUIRE_DUAL_STACK && served.len() < 2 {
        errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            fields.policy.as_str(),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in fields.families.iter().enumerate() {
        if !served.contains(family) {
            errs.push(FieldError::invalid(
                format!("spec.ipFamilies[{i}]"),
                family.as_str(),
                "not configured on this cluster",
            ));
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    if fields.families.is_empty() {
        fields.families.push(served[0]);
    }
    if served.len() == 2 {
        fields.add_second_family_unless_single_stack();
    }
    fields.write(svc);
    errs
}

/// The family fields of one Service, as given.
struct Fields {
    policy: String,
    policy_given: bool,
    /// Unsupported names stay out; `names` keeps what was written.
    families: Vec<IpFamily>,
    names: Vec<String>,
    ips: Vec<String>,
}

impl Fields {
    fn read(svc: &Service) -> Self {
        let policy = svc
            .spec
            .kept
            .get("ipFamilyPolicy")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let names = svc.ip_family_names();
        Self {
            policy_given: policy.is_some(),
            policy: policy.unwrap_or_default(),
            families: names.iter().filter_map(|n| IpFamily::parse(n)).collect(),
            names,
            ips: cluster_ips(svc),
        }
    }

    /// An update keeps the stored policy; a headless Service without
    /// selector may carry any family, so it is dual-stack unless told;
    /// everything else is single-stack. Never PreferDualStack by default.
    fn default_policy(&mut self, headless_selectorless: bool, old: Option<&Fields>) {
        if self.policy_given {
            return;
        }
        let old_policy = old.filter(|o| o.policy_given).map(|o| o.policy.clone());
        self.policy = match (old_policy, headless_selectorless) {
            (Some(policy), _) => policy,
            (None, true) => REQUIRE_DUAL_STACK.to_string(),
            (None, false) => SINGLE_STACK.to_string(),
        };
    }

    /// A PreferDualStack Service re-applied as stored is left as it is:
    /// it is not upgraded or downgraded because the cluster's families
    /// changed since it was made.
    fn unchanged_prefer_dual_stack(&self, old: &Fields) -> bool {
        self.policy_given
            && self.policy == PREFER_DUAL_STACK
            && old.policy == PREFER_DUAL_STACK
            && self.ips == old.ips
            && self.names == old.names
    }

    fn add_second_family_unless_single_stack(&mut self) {
        if self.policy != SINGLE_STACK && self.families.len() == 1 {
            self.families.push(self.families[0].other());
        }
    }

    fn write(&self, svc: &mut Service) {
        let kept = &mut svc.spec.kept;
        kept.insert(
            "ipFamilyPolicy".to_string(),
            serde_json::Value::String(self.policy.clone()),
        );
        let names: Vec<&str> = self.families.iter().map(|f| f.as_str()).collect();
        kept.insert("ipFamilies".to_string(), serde_json::json!(names));
        if !svc.is_headless() {
            svc.spec.cluster_ips = self.ips.clone();
        }
    }
}

/// On update: `SingleStack` with the secondary cluster IP or family still
/// as stored releases it (the user said so); any other policy may not
/// drop it.
fn release_or_keep_secondary(errs: &mut FieldErrors, fields: &mut Fields, old: &Fields) {
    if fields.policy == SINGLE_STACK {
        if fields.ips == old.ips && fields.ips.len() > 1 {
            fields.ips.truncate(1);
        }
        if fields.names == old.names && fields.names.len() > 1 {
            fields.names.truncate(1);
            fields.families.truncate(1);
        }
        return;
    }
    // An empty list is not given, not emptied.
    if !fields.ips.is_empty() && fields.ips.len() < old.ips.len() {
        errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            fields.policy.as_str(),
            "must be 'SingleStack' to release the secondary cluster IP",
        ));
    }
    if !fields.names.is_empty() && fields.names.len() < old.names.len() {
        errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            fields.policy.as_str(),
            "must be 'SingleStack' to release the secondary IP family",
        ));
    }
}

/// Supported values, no family twice.
fn on_their_own(errs: &mut FieldErrors, fields: &Fields) {
    let mut seen = BTreeSet::new();
    for (i, family) in fields.names.iter().enumerate() {
        let path = format!("spec.ipFamilies[{i}]");
        if IpFamily::parse(family).is_none() {
            errs.push(FieldError::not_supported(
                &path,
                family.as_str(),
                IpFamily::NAMES,
            ));
        }
        if !seen.insert(family) {
            errs.push(FieldError::duplicate(&path, family.as_str()));
        }
    }
    if fields.policy_given && !POLICIES.contains(&fields.policy.as_str()) {
        errs.push(FieldError::not_supported(
            "spec.ipFamilyPolicy",
            fields.policy.as_str(),
            POLICIES,
        ));
    }
}

/// At most two cluster IPs, one of each family, each of the family named
/// at its index.
fn dual_stack_ips(errs: &mut FieldErrors, fields: &Fields, parsed: &[IpAddr], headless: bool) {
    let all = || golang::value(golang::string_slice(&fields.ips));
    if fields.ips.len() > 2 {
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
    for (i, (ip, name)) in fields.ips.iter().zip(&fields.names).enumerate() {
        let Some(want) = IpFamily::parse(name) else {
            continue;
        };
        if parsed.get(i).is_some_and(|p| IpFamily::of(*p) != want) {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip.as_str(),
                format!("expected an {want} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
}

/// `SingleStack` with two of anything.
fn single_stack_policy(errs: &mut FieldErrors, fields: &Fields) {
    if fields.policy != SINGLE_STACK {
        return;
    }
    let two = |what: &str| {
        FieldError::invalid(
            "spec.ipFamilyPolicy",
            SINGLE_STACK,
            format!(
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple {what} are specified"
            ),
        )
    };
    if fields.ips.len() == 2 {
        errs.push(two("cluster IPs"));
    }
    if fields.names.len() == 2 {
        errs.push(two("IP families"));
    }
}

/// A cluster IP without a family named at its index names its family,
/// which the cluster must serve.
fn infer_families(
    errs: &mut FieldErrors,
    fields: &mut Fields,
    parsed: &[IpAddr],
    served: &[IpFamily],
) {
    let ips = parsed.iter().take(fields.ips.len());
    for (i, ip) in ips.enumerate().skip(fields.families.len()) {
        let family = IpFamily::of(*ip);
        if served.contains(&family) {
            fields.families.push(family);
        } else {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                golang::value(golang::string_slice(&fields.ips)),
                format!("{family} is not configured on this cluster"),
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
