//! What the settings page shows: the run-time settings table (`config::runtime`) grouped in its
//! sections, each field with its label, kind and current value (never a secret's value). Pure
//! data; the page is `settings`.

use crate::config::runtime::{self, Kind, SECTIONS, TABLE};
use crate::services::settings::site::SiteSettings;

/// One field of a section.
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: &'static Kind,
    pub value: String,
    /// For a secret: whether one is stored.
    pub set: bool,
}

impl Field {
    pub fn is_choice(&self) -> bool {
        !self.options().is_empty()
    }

    pub fn options(&self) -> &'static [(&'static str, &'static str)] {
        match self.kind {
            Kind::Choice(options) => options,
            Kind::Flag => runtime::YES_NO,
            _ => &[],
        }
    }

    pub fn input_type(&self) -> &'static str {
        match self.kind {
            Kind::Url => "url",
            Kind::Number | Kind::Whole { .. } => "number",
            Kind::Secret => "password",
            _ => "text",
        }
    }

    pub fn is_secret(&self) -> bool {
        *self.kind == Kind::Secret
    }

    pub fn is_long(&self) -> bool {
        *self.kind == Kind::LongText
    }

    pub fn input_mode(&self) -> &'static str {
        match self.kind {
            Kind::Amount => "decimal",
            Kind::Number | Kind::Whole { .. } => "numeric",
            _ => "text",
        }
    }
}

/// One card of the page, saved by its own form.
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub note: &'static str,
    pub fields: Vec<Field>,
    pub message: Option<String>,
    pub error: Option<String>,
}

/// Every section with the current values.
pub fn sections(site: &SiteSettings) -> Vec<Section> {
    SECTIONS
        .iter()
        .map(|&(id, title, note)| Section {
            id,
            title,
            note,
            fields: TABLE
                .iter()
                .filter(|s| s.section == id)
                .map(|s| Field {
                    key: s.key,
                    label: s.label,
                    help: s.help,
                    kind: &s.kind,
                    value: site.value_of(s.key).unwrap_or_default(),
                    set: site.secret_is_set(s.key),
                })
                .collect(),
            message: None,
            error: None,
        })
        .collect()
}

/// The label of a setting, for error messages.
pub fn label_of(key: &str) -> &'static str {
    runtime::find(key).map_or("Setting", |s| s.label)
}

/// The section a form names, if it is one.
pub fn section_id(id: &str) -> Option<&'static str> {
    SECTIONS.iter().find(|s| s.0 == id).map(|s| s.0)
}

/// The keys a section edits.
pub fn keys_of(section: &str) -> Vec<&'static str> {
    TABLE.iter().filter(|s| s.section == section).map(|s| s.key).collect()
}

/// Every label, help line, title, note and option label the page shows (for the translation
/// test: these texts reach `layout.t` from data, not from template literals).
pub fn texts() -> Vec<&'static str> {
    let mut texts: Vec<&'static str> = SECTIONS.iter().flat_map(|&(_, title, note)| [title, note]).collect();
    for setting in TABLE {
        texts.extend([setting.label, setting.help]);
        let field = Field { key: "", label: "", help: "", kind: &setting.kind, value: String::new(), set: false };
        texts.extend(field.options().iter().map(|o| o.1));
    }
    texts.retain(|t| !t.is_empty());
    texts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    /// The labels reach `layout.t` from this table, out of sight of the template scan.
    #[test]
    fn every_label_is_translated() {
        // Protocol names (STARTTLS, TLS) read the same in Chinese.
        let missing: Vec<_> =
            texts().into_iter().filter(|t| Lang::Zh.t(t) == *t && !t.chars().all(|c| c.is_ascii_uppercase())).collect();
        assert!(missing.is_empty(), "settings texts without a Chinese entry: {missing:#?}");
    }

    #[test]
    fn every_setting_has_a_field() {
        let shown: Vec<_> = SECTIONS.iter().flat_map(|s| keys_of(s.0)).collect();
        for setting in TABLE {
            assert!(shown.contains(&setting.key), "{} is not on the settings page", setting.key);
        }
    }
}
