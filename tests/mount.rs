//! uWSGI's `mount` and `manage-script-name`: several apps in one process,
//! each at its mountpoint.

mod common;

use std::path::Path;

use common::{Proto, Server, ALL};

/// An app that says its name, SCRIPT_NAME and PATH_INFO.
fn app(dir: &Path, file: &str, name: &str) {
    std::fs::write(
        dir.join(file),
        format!(
            r#"
def application(environ, start_response):
    body = "{name} script=%s path=%s" % (environ["SCRIPT_NAME"], environ["PATH_INFO"])
    body = body.encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"#
        ),
    )
    .unwrap();
}

fn tree(name: &str) -> std::path::PathBuf {
    let dir = common::temp_dir(name);
    app(&dir, "main.py", "main");
    app(&dir, "blog.py", "blog");
    app(&dir, "shop.py", "shop");
    app(&dir, "shop_admin.py", "shop_admin");
    dir
}

#[test]
fn manage_script_name_picks_the_longest_mountpoint_and_moves_it_to_script_name() {
    let dir = tree("mount-manage");
    let d = dir.display().to_string();
    let ini = dir.join("uwsgi.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:{}\nchdir = {d}\nwsgi-file = {d}/main.py\nmount = /blog={d}/blog.py\nmount = /shop=shop:application\nmount = /shop/admin=shop_admin:application\nmanage-script-name = true\n",
            common::free_port()
        ),
    )
    .unwrap();
    let (code, report) = common::run_to_exit(&["--ini", ini.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("applied: --mount"), "{report}");
    assert!(report.contains("applied: --manage-script-name"), "{report}");
    let server = Server::start_in(&dir, &["--ini", ini.to_str().unwrap()]);
    let cases = [
        ("/blog/post/1", "blog script=/blog path=/post/1"),
        ("/blog", "blog script=/blog path="),
        ("/shop/cart", "shop script=/shop path=/cart"),
        (
            "/shop/admin/users",
            "shop_admin script=/shop/admin path=/users",
        ),
        ("/shopping", "main script= path=/shopping"),
        ("/", "main script= path=/"),
    ];
    for proto in ALL {
        for (path, want) in cases {
            assert_eq!(server.get(proto, path).text(), want, "{proto:?} {path}");
        }
    }
}

/// Without manage-script-name the proxy's SCRIPT_NAME picks the app (as
/// nginx sends it with uwsgi_param); a path no mount takes and no main
/// app is a 404.
#[test]
fn without_manage_script_name_the_proxys_script_name_picks_the_app() {
    let dir = tree("mount-script-name");
    let d = dir.display().to_string();
    let blog = format!("/blog={d}/blog.py");
    let server = Server::start_in(
        &dir,
        &["--chdir", &d, "--mount", &blog, "--mount", "/shop=shop"],
    );
    let mut vars = common::cgi_vars("GET", "/post/1", "");
    vars.push(("SCRIPT_NAME", "/blog"));
    let reply = common::unix_exchange(&server.uwsgi, &common::uwsgi_packet(&vars, b""));
    let r = common::Response::from_raw(&reply);
    assert_eq!(r.text(), "blog script=/blog path=/post/1");
    let r = server.get(Proto::Http, "/blog/post/1");
    assert_eq!(r.status, 404, "no SCRIPT_NAME over HTTP, no main app");
    let (code, out) = common::run_to_exit(&["--mount", "blog=x.py"]);
    assert_eq!(code, 2, "{out}");
}
