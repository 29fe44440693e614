//! IngressClass selection: which Ingresses this controller serves.
//!
//! An Ingress is ours when `spec.ingressClassName` equals our class; or, without one, when the legacy
//! annotation `kubernetes.io/ingress.class` equals it; or, with neither, when our IngressClass exists, is
//! controlled by [`CONTROLLER_NAME`] and is marked default with
//! `ingressclass.kubernetes.io/is-default-class: "true"`. Ingresses of other classes are silently ignored:
//! they belong to another controller.

use crate::model::{Ingress, IngressClass};
use crate::route::CONTROLLER_NAME;

/// The legacy (pre-`ingressClassName`) class annotation on an Ingress.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The annotation that makes an IngressClass the cluster default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Decides ownership for one compile; computed once because the default-class check scans classes.
#[derive(Debug, Clone)]
pub struct ClassFilter<'a> {
    class: &'a str,
    owns_unclassed: bool,
}

impl<'a> ClassFilter<'a> {
    /// The filter for our class name among the cluster's IngressClasses.
    pub fn new(class: &'a str, classes: &[IngressClass]) -> Self {
        Self::from_classes(class, classes)
    }

    /// [`ClassFilter::new`] over IngressClasses held any way (e.g. each in an `Arc`).
    pub fn from_classes<'c>(
        class: &'a str,
        classes: impl IntoIterator<Item = &'c IngressClass>,
    ) -> Self {
        let owns_unclassed = classes.into_iter().any(|c| {
            c.metadata.name == class
                && c.spec.controller.as_deref() == Some(CONTROLLER_NAME)
                && c.metadata
                    .annotations
                    .get(DEFAULT_CLASS_ANNOTATION)
                    .map(String::as_str)
                    == Some("true")
        });
        Self {
            class,
            owns_unclassed,
        }
    }

    /// Whether `ingress` is ours.
    pub fn owns(&self, ingress: &Ingress) -> bool {
        // An empty string is treated as unset: the API server never stores one, manifests might.
        if let Some(name) = ingress
            .spec
            .ingress_class_name
            .as_deref()
            .filter(|n| !n.is_empty())
        {
            return name == self.class;
        }
        if let Some(legacy) = ingress.metadata.annotations.get(LEGACY_CLASS_ANNOTATION) {
            return legacy == self.class;
        }
        self.owns_unclassed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(yaml: &str) -> Ingress {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn class(name: &str, controller: &str, default: Option<&str>) -> IngressClass {
        let mut c = IngressClass::default();
        c.metadata.name = name.into();
        c.spec.controller = Some(controller.into());
        if let Some(d) = default {
            c.metadata
                .annotations
                .insert(DEFAULT_CLASS_ANNOTATION.into(), d.into());
        }
        c
    }

    #[test]
    fn class_name_decides_first() {
        let f = ClassFilter::new("rauta", &[]);
        assert!(f.owns(&ingress("spec: {ingressClassName: rauta}")));
        assert!(!f.owns(&ingress("spec: {ingressClassName: nginx}")));
        // ingressClassName wins over a contradicting annotation.
        let both = "metadata: {annotations: {kubernetes.io/ingress.class: nginx}}\nspec: {ingressClassName: rauta}";
        assert!(f.owns(&ingress(both)));
        let both = "metadata: {annotations: {kubernetes.io/ingress.class: rauta}}\nspec: {ingressClassName: nginx}";
        assert!(!f.owns(&ingress(both)));
    }

    #[test]
    fn legacy_annotation_when_no_class_name() {
        let f = ClassFilter::new("rauta", &[class("rauta", CONTROLLER_NAME, Some("true"))]);
        assert!(f.owns(&ingress(
            "metadata: {annotations: {kubernetes.io/ingress.class: rauta}}"
        )));
        assert!(!f.owns(&ingress(
            "metadata: {annotations: {kubernetes.io/ingress.class: nginx}}"
        )));
    }

    #[test]
    fn unclassed_ingress_needs_our_default_class() {
        let plain = ingress("metadata: {name: a}");
        let cases = [
            (vec![], false),
            (vec![class("rauta", CONTROLLER_NAME, Some("true"))], true),
            (vec![class("rauta", CONTROLLER_NAME, Some("false"))], false),
            (vec![class("rauta", CONTROLLER_NAME, None)], false),
            (
                vec![class("rauta", "k8s.io/ingress-nginx", Some("true"))],
                false,
            ),
            (vec![class("other", CONTROLLER_NAME, Some("true"))], false),
        ];
        for (classes, want) in cases {
            assert_eq!(
                ClassFilter::new("rauta", &classes).owns(&plain),
                want,
                "{classes:?}"
            );
        }
    }
}
