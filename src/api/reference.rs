//! The API reference (`docs/api.md`), generated from the CRD schemas: the same `///` documentation
//! `kubectl explain` shows, as one page per repository. `make crds` writes it and a test fails on
//! drift, as for `crds/`.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;

/// Nesting depth beyond which fields are not listed (the schemas are far shallower).
const MAX_DEPTH: usize = 8;

/// The reference of every kind, as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# API reference (`gatehouse.dev/v1alpha1`)\n\n\
         Generated from the CRD schemas by `make crds` (`gatehouse api-reference`); do not edit.\n\
         The same text is what `kubectl explain <kind>.<field>` prints. The approval protocol and the\n\
         trust model are in [protocol.md](protocol.md).\n",
    );
    for crd in super::crds() {
        let names = &crd.spec.names;
        let _ = write!(
            out,
            "\n## {} ({}{})\n\n",
            names.kind,
            crd.spec.scope.to_lowercase(),
            names
                .short_names
                .as_ref()
                .map(|s| format!(", short name `{}`", s.join("`, `")))
                .unwrap_or_default()
        );
        let Some(schema) = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            continue;
        };
        if let Some(description) = &schema.description {
            let _ = writeln!(out, "{}\n", one_line(description));
        }
        out.push_str("| field | type | description |\n|---|---|---|\n");
        for part in ["spec", "status"] {
            if let Some(props) = schema.properties.as_ref().and_then(|p| p.get(part)) {
                fields(&mut out, part, props, 0);
            }
        }
    }
    out
}

fn fields(out: &mut String, path: &str, schema: &JSONSchemaProps, depth: usize) {
    let _ = writeln!(
        out,
        "| `{path}` | {} | {} |",
        type_of(schema),
        schema
            .description
            .as_deref()
            .map(one_line)
            .unwrap_or_default()
            .replace('|', "\\|")
    );
    if depth >= MAX_DEPTH {
        return;
    }
    let (children, prefix) = match schema
        .items
        .as_ref()
        .and_then(|items| match items {
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s) => Some(s.as_ref()),
            _ => None,
        }) {
        Some(item) => (item.properties.as_ref(), format!("{path}[]")),
        None => (schema.properties.as_ref(), path.to_string()),
    };
    for (name, child) in children.into_iter().flatten() {
        fields(out, &format!("{prefix}.{name}"), child, depth + 1);
    }
}

fn type_of(schema: &JSONSchemaProps) -> String {
    let base = schema.type_.clone().unwrap_or_else(|| "object".into());
    match (&schema.enum_, base.as_str()) {
        (Some(values), _) => values
            .iter()
            .map(|v| v.0.as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join(" \\| "),
        (None, "array") => {
            let item = schema.items.as_ref().and_then(|items| match items {
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s) => s.type_.clone(),
                _ => None,
            });
            format!("[]{}", item.unwrap_or_else(|| "object".into()))
        }
        _ => base,
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_and_its_documented_fields_are_listed() {
        let page = super::markdown();
        for kind in [
            "AccessPolicy",
            "AccessRecord",
            "AccessRequest",
            "SharingPolicy",
            "DataSharingAgreement",
            "OrgChart",
        ] {
            assert!(page.contains(&format!("## {kind} (")), "{kind}");
        }
        assert!(
            page.contains("| `spec.subjects[].name` |"),
            "nested list fields"
        );
        assert!(page.contains("| `status.grant.seal` |"), "status fields");
        assert!(page.contains("## OrgChart (cluster)"), "{page}");
        assert!(
            page.contains("Pending \\| Approved"),
            "enums list their values"
        );
    }
}
