//! Tests of [`super`]: each reading rule, named after the uWSGI behaviour it mirrors.
use super::*;

fn read(text: &str, section: &str) -> Result<IniReader, String> {
    let dir = std::env::temp_dir().join(format!("rwsgi-ini-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("t{}.ini", rand_suffix()));
    std::fs::write(&path, text).unwrap();
    let mut reader = IniReader::default();
    let result = reader.read(path.to_str().unwrap(), Some(section));
    reader.finish();
    let _ = std::fs::remove_file(&path);
    result.map(|()| reader)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn options(reader: &IniReader) -> Vec<(String, String)> {
    reader
        .items
        .iter()
        .filter_map(|i| match i {
            IniItem::Option(l) => Some((l.key.clone(), l.value.clone())),
            IniItem::Other(_) => None,
        })
        .collect()
}

#[test]
fn reads_the_uwsgi_section_only() {
    let r = read(
        "top = 1\n[other]\nprocesses = 9\n[uwsgi]\n; comment\n# another\nprocesses = 4\nmaster\n",
        "uwsgi",
    )
    .unwrap();
    assert_eq!(
        options(&r),
        [
            ("processes".into(), "4".into()),
            ("master".into(), "".into())
        ]
    );
}

#[test]
fn repeated_keys_stay_in_order() {
    let r = read("[uwsgi]\nsocket = a.sock\nsocket = :9000\n", "uwsgi").unwrap();
    assert_eq!(options(&r).len(), 2);
    assert_eq!(options(&r)[1].1, ":9000");
}

#[test]
fn a_missing_section_is_an_error() {
    let err = read("[dev]\nprocesses = 4\n", "uwsgi").unwrap_err();
    assert!(err.contains("no [uwsgi] section"), "{err}");
}

#[test]
fn a_named_section_and_an_include_of_another() {
    let r = read(
        "[base]\nchdir = /srv\n[prod]\nini = :base\nprocesses = %(chdir)\n",
        "prod",
    )
    .unwrap();
    assert_eq!(
        options(&r),
        [
            ("chdir".into(), "/srv".into()),
            ("processes".into(), "/srv".into())
        ]
    );
}

#[test]
fn conditions_and_loops() {
    std::env::set_var("RWSGI_INI_TEST_FLAG", "yes");
    let r = read(
        "[uwsgi]\nif-env = RWSGI_INI_TEST_FLAG\nenv = FLAG=%(_)\nendif =\n\
         if-env = RWSGI_INI_TEST_UNSET\nprocesses = 99\nendif =\n\
         for = a b\npythonpath = /p/%(_)\nendfor =\n",
        "uwsgi",
    )
    .unwrap();
    assert_eq!(
        options(&r),
        [
            ("env".into(), "FLAG=yes".into()),
            ("pythonpath".into(), "/p/a".into()),
            ("pythonpath".into(), "/p/b".into()),
        ]
    );
}

#[test]
fn a_comment_after_a_value_stays_in_the_value_as_uwsgi_ini_c_keeps_it() {
    let r = read(
        "[uwsgi]\nprocesses = 4   ; four workers\nharakiri = 60  # seconds\n  ; a comment line\n",
        "uwsgi",
    )
    .unwrap();
    assert_eq!(
        options(&r),
        [
            ("processes".into(), "4   ; four workers".into()),
            ("harakiri".into(), "60  # seconds".into())
        ]
    );
}

#[test]
fn magic_variables_expand_over_the_whole_file_as_uwsgi_open_and_read_does() {
    let r = read("[uwsgi]\nchdir = %d\nenv = A=%Z%%\n", "uwsgi").unwrap();
    let opts = options(&r);
    assert!(
        opts[0].1.starts_with('/') && opts[0].1.ends_with('/'),
        "{opts:?}"
    );
    assert_eq!(opts[1].1, "A=%");
}

#[test]
fn a_set_but_empty_variable_makes_if_env_true_as_uwsgi_getenv_test() {
    std::env::set_var("RWSGI_INI_TEST_EMPTY", "");
    let r = read(
        "[uwsgi]\nif-env = RWSGI_INI_TEST_EMPTY\nprocesses = 2\nendif =\n",
        "uwsgi",
    )
    .unwrap();
    assert_eq!(options(&r), [("processes".into(), "2".into())]);
}

#[test]
fn any_end_keyword_closes_a_block_as_in_uwsgi() {
    let r = read(
        "[uwsgi]\nif-exists = /nonexistent\nprocesses = 2\nend =\nthreads = 3\n",
        "uwsgi",
    )
    .unwrap();
    assert_eq!(options(&r), [("threads".into(), "3".into())]);
}

#[test]
fn placeholders_see_options_of_later_lines_as_uwsgi_expands_after_reading() {
    let r = read(
        "[uwsgi]\nchdir = %(base)/app\nset-placeholder = base=/srv\n",
        "uwsgi",
    )
    .unwrap();
    assert_eq!(options(&r), [("chdir".into(), "/srv/app".into())]);
    assert_eq!(r.used.len(), 1);
}

#[test]
fn file_and_section_spec() {
    assert_eq!(
        split_spec("/nonexistent/app.ini"),
        ("/nonexistent/app.ini", None)
    );
    assert_eq!(
        split_spec("/nonexistent/app.ini:prod"),
        ("/nonexistent/app.ini", Some("prod"))
    );
}
