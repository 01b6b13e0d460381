//! Verbs and their forms: `create`, `created`, `creating`. A relationship's verb is
//! kept in its past form, the form its event takes (`Customer.purchased`), whichever
//! form it was given in (`purchase`, `purchases`, `purchased`), so `relate`, `related`
//! and subscriptions all name it one way. English rules with a table of irregular verbs;
//! a verb the rules get wrong can always be given in the past form, which is kept as is.

use rpc_core::RpcError;

/// Irregular verbs: base, past.
const IRREGULAR: &[(&str, &str)] = &[
    ("be", "was"),
    ("become", "became"),
    ("begin", "began"),
    ("bleed", "bled"),
    ("breed", "bred"),
    ("bring", "brought"),
    ("build", "built"),
    ("buy", "bought"),
    ("catch", "caught"),
    ("choose", "chose"),
    ("come", "came"),
    ("cut", "cut"),
    ("do", "did"),
    ("draw", "drew"),
    ("drive", "drove"),
    ("eat", "ate"),
    ("feed", "fed"),
    ("feel", "felt"),
    ("fight", "fought"),
    ("find", "found"),
    ("fly", "flew"),
    ("forget", "forgot"),
    ("get", "got"),
    ("give", "gave"),
    ("go", "went"),
    ("grow", "grew"),
    ("have", "had"),
    ("hear", "heard"),
    ("hide", "hid"),
    ("hit", "hit"),
    ("hold", "held"),
    ("keep", "kept"),
    ("know", "knew"),
    ("lead", "led"),
    ("leave", "left"),
    ("lend", "lent"),
    ("let", "let"),
    ("lose", "lost"),
    ("make", "made"),
    ("mean", "meant"),
    ("meet", "met"),
    ("pay", "paid"),
    ("put", "put"),
    ("read", "read"),
    ("ride", "rode"),
    ("run", "ran"),
    ("say", "said"),
    ("see", "saw"),
    ("sell", "sold"),
    ("send", "sent"),
    ("set", "set"),
    ("shut", "shut"),
    ("sit", "sat"),
    ("speak", "spoke"),
    ("spend", "spent"),
    ("stand", "stood"),
    ("steal", "stole"),
    ("take", "took"),
    ("teach", "taught"),
    ("tell", "told"),
    ("think", "thought"),
    ("throw", "threw"),
    ("understand", "understood"),
    ("win", "won"),
    ("write", "wrote"),
];

/// A verb's three forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verb {
    /// `create`.
    pub base: String,
    /// `created`: what events and relationships use.
    pub past: String,
    /// `creating`.
    pub gerund: String,
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// One syllable ending consonant-vowel-consonant (not w, x, y): `stop`, `plan`, `tag`.
/// Such a verb doubles its last letter: `stopped`, `planning`.
fn doubles(base: &str) -> bool {
    let b = base.as_bytes();
    let n = b.len();
    if n < 3 {
        return false;
    }
    let (c1, v, c2) = (b[n - 3], b[n - 2], b[n - 1]);
    let vowel_groups = b.windows(2).filter(|w| !is_vowel(w[0]) && is_vowel(w[1])).count() + usize::from(is_vowel(b[0]));
    vowel_groups == 1 && !is_vowel(c1) && is_vowel(v) && !is_vowel(c2) && !matches!(c2, b'w' | b'x' | b'y')
}

fn past_of_base(base: &str) -> String {
    if let Some((_, past)) = IRREGULAR.iter().find(|(b, _)| *b == base) {
        return (*past).to_string();
    }
    let b = base.as_bytes();
    match b {
        [.., b'e'] => format!("{base}d"),
        [.., c, b'y'] if !is_vowel(*c) => format!("{}ied", &base[..base.len() - 1]),
        _ if doubles(base) => format!("{base}{}ed", &base[base.len() - 1..]),
        _ => format!("{base}ed"),
    }
}

fn gerund_of_base(base: &str) -> String {
    let b = base.as_bytes();
    match b {
        [.., b'i', b'e'] => format!("{}ying", &base[..base.len() - 2]),
        [.., b'e', b'e'] => format!("{base}ing"),
        [_, _, .., b'e'] => format!("{}ing", &base[..base.len() - 1]),
        _ if doubles(base) => format!("{base}{}ing", &base[..].chars().last().map(String::from).unwrap_or_default()),
        _ => format!("{base}ing"),
    }
}

/// The base form of a present third person (`follows`, `watches`, `carries`).
fn base_of_present(s: &str) -> Option<String> {
    match s {
        "is" => return Some("be".into()),
        "has" => return Some("have".into()),
        "does" => return Some("do".into()),
        "goes" => return Some("go".into()),
        _ => {}
    }
    if let Some(stem) = s.strip_suffix("ies").filter(|t| t.len() >= 2) {
        return Some(format!("{stem}y"));
    }
    for ending in ["sses", "shes", "ches", "xes", "zes"] {
        if s.ends_with(ending) {
            return Some(s[..s.len() - 2].to_string());
        }
    }
    s.strip_suffix('s')
        .filter(|stem| stem.len() >= 2 && !stem.ends_with('s') && !stem.ends_with('u'))
        .map(str::to_string)
}

/// Bases that end in `eed` (any other word that does is a past: `agreed`, `freed`).
const EED_BASES: &[&str] =
    &["need", "feed", "speed", "bleed", "breed", "proceed", "exceed", "succeed", "heed", "seed", "weed"];

fn is_past(w: &str) -> bool {
    let regular = w.ends_with("ed") && !EED_BASES.contains(&w) && !IRREGULAR.iter().any(|(b, _)| *b == w);
    regular || IRREGULAR.iter().any(|(b, p)| *p == w && *b != w)
}

impl Verb {
    /// The forms of a verb given in its base form (`create`). A verb is an identifier
    /// ([`rpc_core::ident::verb`]); forms are in lower case.
    pub fn of(base: &str) -> Result<Verb, RpcError> {
        rpc_core::ident::verb(base)?;
        let base = base.to_ascii_lowercase();
        Ok(Verb { past: past_of_base(&base), gerund: gerund_of_base(&base), base })
    }
}

/// The past form of `word`, given in its base (`purchase`), present (`purchases`) or
/// past (`purchased`, `bought`) form: a past is kept as it is, the others derived.
pub fn past(word: &str) -> Result<String, RpcError> {
    rpc_core::ident::verb(word)?;
    let w = word.to_ascii_lowercase();
    if is_past(&w) {
        return Ok(w);
    }
    if IRREGULAR.iter().any(|(b, _)| *b == w) {
        return Ok(past_of_base(&w));
    }
    Ok(past_of_base(&base_of_present(&w).unwrap_or(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_derive_consistently_and_any_form_gives_the_past() {
        let table = [
            ("create", "created", "creating"),
            ("update", "updated", "updating"),
            ("delete", "deleted", "deleting"),
            ("purchase", "purchased", "purchasing"),
            ("follow", "followed", "following"),
            ("stop", "stopped", "stopping"),
            ("plan", "planned", "planning"),
            ("carry", "carried", "carrying"),
            ("play", "played", "playing"),
            ("watch", "watched", "watching"),
            ("visit", "visited", "visiting"),
            ("open", "opened", "opening"),
            ("need", "needed", "needing"),
            ("agree", "agreed", "agreeing"),
            ("tie", "tied", "tying"),
            ("buy", "bought", "buying"),
            ("write", "wrote", "writing"),
            ("own", "owned", "owning"),
            ("like", "liked", "liking"),
        ];
        for (base, past_form, gerund) in table {
            let want = Verb { base: base.into(), past: past_form.into(), gerund: gerund.into() };
            assert_eq!(Verb::of(base).unwrap(), want, "from {base}");
            assert_eq!(past(base).unwrap(), past_form, "past of {base}");
            assert_eq!(past(past_form).unwrap(), past_form, "a past is kept: {past_form}");
        }
        for (present, past_form) in [
            ("follows", "followed"),
            ("watches", "watched"),
            ("carries", "carried"),
            ("likes", "liked"),
            ("has", "had"),
        ] {
            assert_eq!(past(present).unwrap(), past_form, "from {present}");
        }
        assert_eq!(past("Purchased").unwrap(), "purchased");
        assert!(past("not a verb").is_err() && past("").is_err() && Verb::of("a.b").is_err());
    }
}
