//! The languages of the console and the emails: English and Simplified Chinese. Templates write their English text
//! through `layout.t("…")`; the English text is the key into the Chinese table (gettext-style),
//! so templates stay readable and a missing translation falls back to English. A test checks
//! that every `t("…")` in `templates/` has a Chinese entry.

mod zh;

use std::collections::HashMap;
use std::sync::LazyLock;

/// A console language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// `en` or `zh` (cookie values and `<html lang>`).
    pub fn parse(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Self::En),
            "zh" | "zh-cn" | "zh-hans" => Some(Self::Zh),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh-CN",
        }
    }

    /// The best match for an `Accept-Language` header: the first language by quality that is
    /// English or any Chinese variant; English when neither is asked for.
    pub fn from_accept_language(header: &str) -> Self {
        let mut ranked: Vec<(f32, &str)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (!tag.is_empty() && quality > 0.0).then_some((quality, tag))
            })
            .collect();
        // Stable: equal qualities keep the header's order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, tag) in ranked {
            let primary = tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
            match primary.as_str() {
                "zh" => return Self::Zh,
                "en" => return Self::En,
                _ => {}
            }
        }
        Self::En
    }

    /// `text` in this language (`text` itself in English or when no translation exists).
    pub fn t(self, text: &str) -> &str {
        match self {
            Self::En => text,
            Self::Zh => ZH_INDEX.get(text).copied().unwrap_or(text),
        }
    }
}

/// Every table: the user console's, each admin page's and the reseller page's.
fn tables() -> impl Iterator<Item = &'static [(&'static str, &'static str)]> {
    std::iter::once(zh::console::ZH).chain(zh::admin::ALL.iter().copied()).chain(std::iter::once(zh::reseller::ZH))
}

static ZH_INDEX: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| tables().flat_map(|t| t.iter().copied()).collect());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,zh;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR, zh-TW;q=0.5"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr, de;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept_language("en;q=0.1, zh;q=0.9"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("zh;q=0, en"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language(";;,q=,;q=abc"), Lang::En);
    }

    #[test]
    fn unknown_text_falls_back_to_english() {
        assert_eq!(Lang::Zh.t("Log in"), "登录");
        assert_eq!(Lang::Zh.t("no such text"), "no such text");
        assert_eq!(Lang::En.t("Log in"), "Log in");
    }

    /// A `{name}` placeholder in the English text is in its translation too, and no translation
    /// is left empty.
    #[test]
    fn translations_keep_their_placeholders() {
        for (en, zh) in tables().flat_map(|t| t.iter().copied()) {
            assert!(!zh.trim().is_empty(), "{en}");
            for piece in en.split('{').skip(1) {
                let name = piece.split('}').next().unwrap();
                assert!(zh.contains(&format!("{{{name}}}")), "{{{name}}} missing in the translation of {en:?}");
            }
        }
    }

    /// Every `.t("…")` in the templates and the console's handlers has a Chinese entry.
    #[test]
    fn every_template_text_is_translated() {
        let mut used = std::collections::BTreeSet::new();
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("templates"), root.join("src/console"), root.join("src/mail.rs")];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split(".t(\"").skip(1) {
                if let Some(end) = piece.find("\")") {
                    used.insert(piece[..end].to_string());
                }
            }
        }
        let missing: Vec<_> = used.iter().filter(|t| !ZH_INDEX.contains_key(t.as_str())).collect();
        assert!(missing.is_empty(), "texts without a Chinese entry: {missing:#?}");
        // A text may appear in several tables (pages are written apart), but always the same way.
        let mut seen = HashMap::new();
        for (en, zh) in tables().flat_map(|t| t.iter().copied()) {
            let first = *seen.entry(en).or_insert(zh);
            assert_eq!(first, zh, "{en:?} is translated two ways");
        }
    }
}
