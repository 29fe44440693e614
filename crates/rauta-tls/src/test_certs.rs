//! Test certificates made at test time: a CA, an intermediate, and leaves with ECDSA or RSA keys.

use std::collections::BTreeMap;

use rauta_routes::model::{ObjectMeta, Secret};

/// A leaf's PEM chain (leaf first) and key.
pub struct Leaf {
    pub chain: String,
    pub key: String,
}

/// An RSA-2048 PKCS#8 key from `openssl genpkey` (ring cannot generate RSA keys).
pub fn rsa_key_pem() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl is needed to generate RSA test keys");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// A leaf for `hosts` signed by an intermediate signed by a CA; RSA or ECDSA P-256 leaf key.
pub fn leaf(hosts: &[&str], rsa: bool) -> Leaf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test root");
    let ca = ca.self_signed(&ca_key).unwrap();
    let mid_key = rcgen::KeyPair::generate().unwrap();
    let mut mid = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    mid.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    mid.distinguished_name
        .push(rcgen::DnType::CommonName, "test intermediate");
    let mid = mid.signed_by(&mid_key, &ca, &ca_key).unwrap();
    let key = if rsa {
        rcgen::KeyPair::from_pem_and_sign_algo(&rsa_key_pem(), &rcgen::PKCS_RSA_SHA256).unwrap()
    } else {
        rcgen::KeyPair::generate().unwrap()
    };
    let params =
        rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &mid, &mid_key).unwrap();
    Leaf {
        chain: cert.pem() + &mid.pem(),
        key: key.serialize_pem(),
    }
}

/// A `kubernetes.io/tls` Secret `default/NAME` with the given PEM values in `stringData`.
pub fn secret(name: &str, crt: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: name.into(),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: BTreeMap::new(),
        string_data: BTreeMap::from([
            ("tls.crt".to_owned(), crt.to_owned()),
            ("tls.key".to_owned(), key.to_owned()),
        ]),
    }
}
