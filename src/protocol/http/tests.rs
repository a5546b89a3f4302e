//! One test per wire behaviour of [`HttpCodec`], named after it.

use bytes::BytesMut;

use super::HttpCodec;
use crate::protocol::{BodyFraming, ErrorKind, Limits, ProtocolError, Request};

fn decode_with(limits: Limits, input: &[u8]) -> Result<Option<Request>, ProtocolError> {
    HttpCodec::new(limits).decode(&mut BytesMut::from(input))
}

fn request(input: &[u8]) -> Request {
    match decode_with(Limits::default(), input) {
        Ok(Some(req)) => req,
        other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(input)),
    }
}

fn rejected_with(limits: Limits, input: &[u8]) -> ErrorKind {
    match decode_with(limits, input) {
        Err(e) => e.kind(),
        other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(input)),
    }
}

fn rejected(input: &[u8]) -> ErrorKind {
    rejected_with(Limits::default(), input)
}

fn var<'a>(req: &'a Request, key: &str) -> &'a [u8] {
    req.var(key.as_bytes())
        .unwrap_or_else(|| panic!("no {key}"))
        .as_ref()
}

#[test]
fn simple_get_gives_cgi_variables() {
    let req = request(b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n");
    assert_eq!(var(&req, "REQUEST_METHOD"), b"GET");
    assert_eq!(var(&req, "REQUEST_URI"), b"/a/b?x=1");
    assert_eq!(var(&req, "PATH_INFO"), b"/a/b");
    assert_eq!(var(&req, "QUERY_STRING"), b"x=1");
    assert_eq!(var(&req, "SERVER_PROTOCOL"), b"HTTP/1.1");
    assert_eq!(var(&req, "HTTP_HOST"), b"h");
    assert_eq!(var(&req, "HTTP_USER_AGENT"), b"t");
    assert_eq!(req.body, BodyFraming::Length(0));
    assert!(req.keep_alive && !req.http10 && !req.head && !req.expect_continue);
}

#[test]
fn head_bytes_are_removed_and_body_stays() {
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET"[..]);
    let req = HttpCodec::new(Limits::default())
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(req.body, BodyFraming::Length(3));
    assert_eq!(&buf[..], b"abcGET");
}

#[test]
fn incomplete_head_needs_more_bytes() {
    let mut codec = HttpCodec::new(Limits::default());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(buf.len(), 25, "nothing consumed before the head is whole");
    buf.extend_from_slice(b"\r\n");
    assert!(codec.decode(&mut buf).unwrap().is_some());
    assert!(buf.is_empty());
}

#[test]
fn pipelined_heads_decode_one_at_a_time() {
    let mut codec = HttpCodec::new(Limits::default());
    let mut buf = BytesMut::from(
        &b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"[..],
    );
    let first = codec.decode(&mut buf).unwrap().unwrap();
    let second = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(var(&first, "PATH_INFO"), b"/1");
    assert_eq!(var(&second, "PATH_INFO"), b"/2");
    assert!(codec.decode(&mut buf).unwrap().is_none());
}

#[test]
fn leading_empty_line_is_skipped() {
    let req = request(b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "REQUEST_METHOD"), b"GET");
}

#[test]
fn content_length_with_transfer_encoding_is_rejected() {
    let input = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn two_different_content_lengths_are_rejected() {
    let input = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn repeated_identical_content_length_is_one_value() {
    let req =
        request(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(req.body, BodyFraming::Length(3));
    assert_eq!(var(&req, "CONTENT_LENGTH"), b"3");
}

#[test]
fn content_length_list_form_is_rejected() {
    assert_eq!(
        rejected(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn signed_content_length_is_rejected() {
    assert_eq!(
        rejected(b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn overflowing_content_length_is_rejected() {
    let input = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn content_length_over_body_limit_is_413() {
    let limits = Limits {
        body: 10,
        ..Limits::default()
    };
    let input = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(rejected_with(limits, input), ErrorKind::BodyTooLarge);
}

#[test]
fn content_type_and_length_are_not_http_vars() {
    let req =
        request(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\nContent-Length: 1\r\n\r\n");
    assert_eq!(var(&req, "CONTENT_TYPE"), b"a/b");
    assert_eq!(var(&req, "CONTENT_LENGTH"), b"1");
    assert!(req.var(b"HTTP_CONTENT_TYPE").is_none());
    assert!(req.var(b"HTTP_CONTENT_LENGTH").is_none());
}

#[test]
fn chunked_transfer_encoding_frames_the_body() {
    let req =
        request(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, Chunked\r\n\r\n");
    assert_eq!(req.body, BodyFraming::Chunked);
}

#[test]
fn chunked_not_last_is_rejected() {
    let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn chunked_twice_is_rejected() {
    let input =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn unknown_transfer_coding_before_chunked_is_501() {
    let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::NotImplemented);
}

#[test]
fn transfer_encoding_in_http10_is_rejected() {
    let input = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn request_line_over_limit_is_414_before_crlf() {
    let mut codec = HttpCodec::new(Limits {
        request_line: 16,
        ..Limits::default()
    });
    let mut buf = BytesMut::from(&b"GET /0123456789"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(b"ab");
    let err = codec.decode(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UriTooLong);
    assert_eq!(err.status(), 414);
}

#[test]
fn request_line_at_limit_is_accepted() {
    let line = b"GET /0123456789ab HTTP/1.1";
    let limits = Limits {
        request_line: line.len(),
        ..Limits::default()
    };
    let input = [&line[..], b"\r\nHost: h\r\n\r\n"].concat();
    assert!(decode_with(limits, &input).unwrap().is_some());
}

#[test]
fn header_count_over_limit_is_431() {
    let limits = Limits {
        header_count: 2,
        ..Limits::default()
    };
    let input = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(rejected_with(limits, input), ErrorKind::HeadersTooLarge);
}

#[test]
fn header_field_over_limit_is_431_before_crlf() {
    let mut codec = HttpCodec::new(Limits {
        header_field: 10,
        ..Limits::default()
    });
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nAccept: "[..]);
    assert!(
        codec.decode(&mut buf).unwrap().is_none(),
        "8 bytes + CRLF fit"
    );
    buf.extend_from_slice(b"*");
    let err = codec.decode(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HeadersTooLarge);
}

#[test]
fn head_over_size_limit_is_431() {
    let limits = Limits {
        head_size: 40,
        ..Limits::default()
    };
    let mut codec = HttpCodec::new(limits);
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none(), "40 bytes fit");
    buf.extend_from_slice(b"E");
    let err = codec.decode(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HeadersTooLarge);
}

#[test]
fn bare_lf_in_head_is_rejected() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\nHost: x\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nHost: x\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn bare_cr_in_head_is_rejected() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"GET / HTTP/1.1\rA: x\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn obs_fold_is_rejected() {
    let input = b"GET / HTTP/1.1\r\nLong: one\r\n two\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn whitespace_before_colon_is_rejected() {
    let input = b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn invalid_field_name_byte_is_rejected() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nA(b: 1\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\n: 1\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn ctl_in_field_value_is_rejected() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nA: x\x00y\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nA: x\x7fy\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn obs_text_in_field_value_is_kept() {
    let req = request(b"GET / HTTP/1.1\r\nHost: h\r\nA: caf\xc3\xa9\r\n\r\n");
    assert_eq!(var(&req, "HTTP_A"), b"caf\xc3\xa9");
}

#[test]
fn field_value_whitespace_is_trimmed() {
    let req = request(b"GET / HTTP/1.1\r\nHost: h\r\nA: \t x y \t \r\nB:\r\n\r\n");
    assert_eq!(var(&req, "HTTP_A"), b"x y");
    assert_eq!(var(&req, "HTTP_B"), b"");
}

#[test]
fn repeated_headers_are_comma_joined() {
    let req = request(b"GET / HTTP/1.0\r\nAccept: a\r\nX: 1\r\naccept: b\r\n\r\n");
    assert_eq!(var(&req, "HTTP_ACCEPT"), b"a, b");
    let names: Vec<&[u8]> = req.vars.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(
        &names[5..],
        [&b"HTTP_ACCEPT"[..], b"HTTP_X"],
        "one var, first position"
    );
}

#[test]
fn cookies_are_semicolon_joined() {
    let req = request(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n");
    assert_eq!(var(&req, "HTTP_COOKIE"), b"a=1; b=2");
}

#[test]
fn duplicate_host_is_rejected() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn duplicate_content_type_is_rejected() {
    let input = b"GET / HTTP/1.1\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n";
    assert_eq!(rejected(input), ErrorKind::BadRequest);
}

#[test]
fn underscore_header_is_dropped() {
    let req =
        request(b"GET / HTTP/1.0\r\nX_Auth: evil\r\nX-Auth: good\r\nContent_Length: 9\r\n\r\n");
    assert_eq!(var(&req, "HTTP_X_AUTH"), b"good");
    assert!(req.var(b"CONTENT_LENGTH").is_none());
    assert_eq!(req.body, BodyFraming::Length(0));
}

#[test]
fn other_header_names_are_uppercased_with_underscores() {
    let req = request(b"GET / HTTP/1.1\r\nHost: h\r\nx-my.custom|Name: v\r\n\r\n");
    assert_eq!(var(&req, "HTTP_X_MY.CUSTOM|NAME"), b"v");
}

#[test]
fn path_info_is_percent_decoded_bytes() {
    let req = request(b"GET /a%20b/%C3%A9%2Fc%zz%4?q=%20 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "PATH_INFO"), b"/a b/\xc3\xa9/c%zz%4");
    assert_eq!(var(&req, "QUERY_STRING"), b"q=%20");
    assert_eq!(var(&req, "REQUEST_URI"), b"/a%20b/%C3%A9%2Fc%zz%4?q=%20");
}

#[test]
fn fragment_is_dropped_from_path_and_query() {
    let req = request(b"GET /p?q=1#frag HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "PATH_INFO"), b"/p");
    assert_eq!(var(&req, "QUERY_STRING"), b"q=1");
    let req = request(b"GET /p#f?x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "PATH_INFO"), b"/p");
    assert_eq!(var(&req, "QUERY_STRING"), b"");
}

#[test]
fn absolute_form_path_is_the_uri_path() {
    let req = request(b"GET http://host:8080/p%41?q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "PATH_INFO"), b"/pA");
    assert_eq!(var(&req, "QUERY_STRING"), b"q");
    let req = request(b"GET HTTPS://host?q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "PATH_INFO"), b"/");
}

#[test]
fn absolute_form_needs_http_scheme_and_host() {
    assert_eq!(
        rejected(b"GET ftp://h/p HTTP/1.1\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"GET http:///p HTTP/1.1\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn asterisk_form_only_with_options() {
    let req = request(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "PATH_INFO"), b"*");
    assert_eq!(
        rejected(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn authority_form_only_with_connect() {
    let req = request(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "PATH_INFO"), b"[::1]:443");
    assert_eq!(
        rejected(b"GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn relative_target_is_rejected() {
    assert_eq!(
        rejected(b"GET foo/bar HTTP/1.1\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn lowercase_method_is_rejected() {
    assert_eq!(rejected(b"get / HTTP/1.1\r\n\r\n"), ErrorKind::BadRequest);
}

#[test]
fn non_token_method_is_rejected() {
    assert_eq!(rejected(b"GE:T / HTTP/1.1\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(
        rejected(b"GET\x00 / HTTP/1.1\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn unconventional_uppercase_method_is_accepted() {
    let req = request(b"-BLARGH /foo HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&req, "REQUEST_METHOD"), b"-BLARGH");
}

#[test]
fn extra_spaces_in_request_line_are_rejected() {
    assert_eq!(rejected(b"GET  / HTTP/1.1\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(rejected(b"GET / HTTP/1.1 \r\n\r\n"), ErrorKind::BadRequest);
}

#[test]
fn malformed_version_is_400() {
    assert_eq!(rejected(b"GET / HTTP/1.10\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(rejected(b"GET / http/1.1\r\n\r\n"), ErrorKind::BadRequest);
}

#[test]
fn other_version_is_505() {
    let err = decode_with(Limits::default(), b"GET / HTTP/2.0\r\n\r\n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionNotSupported);
    assert_eq!(err.status(), 505);
    assert_eq!(
        rejected(b"GET / HTTP/1.2\r\n\r\n"),
        ErrorKind::VersionNotSupported
    );
}

#[test]
fn http11_keeps_alive_unless_close() {
    assert!(request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").keep_alive);
    assert!(
        !request(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive
    );
}

#[test]
fn http10_keep_alive() {
    let req = request(b"GET / HTTP/1.0\r\n\r\n");
    assert!(req.http10 && !req.keep_alive);
    assert_eq!(var(&req, "SERVER_PROTOCOL"), b"HTTP/1.0");
    assert!(request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

#[test]
fn expect_100_continue() {
    let req =
        request(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(req.expect_continue);
    assert!(!request(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    assert!(!request(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n").expect_continue);
}

#[test]
fn head_method_is_flagged() {
    assert!(request(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").head);
}

/// Requests covering each branch of the head decoder, for the split test.
const VALID: &[&[u8]] = &[
    b"GET /a%20b?x=1#f HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n\r\n",
    b"\r\nPOST /u HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nCookie: a\r\nCookie: b\r\n\r\n1\r\nx\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\nX_Y: drop\r\nV: \t caf\xc3\xa9 \r\n\r\n",
    b"CONNECT h:1 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
];

fn decode_pieces(input: &[u8], cuts: &[usize]) -> (String, Vec<u8>) {
    let mut codec = HttpCodec::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([input.len()].iter()) {
        buf.extend_from_slice(&input[from..cut]);
        from = cut;
        if let Some(req) = codec.decode(&mut buf).unwrap() {
            buf.extend_from_slice(&input[from..]);
            return (format!("{req:?}"), buf.to_vec());
        }
    }
    panic!(
        "no request from {:?} cut at {cuts:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn every_split_into_two_or_three_pieces_gives_the_same_request() {
    for input in VALID {
        let whole = decode_pieces(input, &[]);
        for i in 0..=input.len() {
            assert_eq!(decode_pieces(input, &[i]), whole, "cut at {i}");
            for j in i..=input.len() {
                assert_eq!(decode_pieces(input, &[i, j]), whole, "cuts at {i}, {j}");
            }
        }
    }
}

/// Found by fuzzing: these were judged differently whole and split.
#[test]
fn limit_verdicts_do_not_depend_on_the_split() {
    let long_target = [
        b"GET /".to_vec(),
        vec![b'a'; 70_000],
        b" HTTP/1.1\r\n\r\n".to_vec(),
    ]
    .concat();
    let long_line_bare_lf = [
        b"GET /".to_vec(),
        vec![b'a'; 8200],
        b" HTTP/1.1\n\r\n".to_vec(),
    ]
    .concat();
    let long_field_bare_lf = [
        b"GET / HTTP/1.1\r\nX: ".to_vec(),
        vec![b'a'; 8200],
        b"\n\r\n".to_vec(),
    ]
    .concat();
    for (input, splits) in [
        (long_target, vec![9000, 40_000]),
        (long_line_bare_lf, vec![8200, 100]),
        (long_field_bare_lf, vec![8210, 30]),
    ] {
        let whole = HttpCodec::new(Limits::default())
            .decode(&mut BytesMut::from(&input[..]))
            .unwrap_err();
        for split in splits {
            let mut codec = HttpCodec::new(Limits::default());
            let mut buf = BytesMut::from(&input[..split]);
            let err = match codec.decode(&mut buf) {
                Err(e) => e,
                Ok(_) => {
                    buf.extend_from_slice(&input[split..]);
                    codec.decode(&mut buf).unwrap_err()
                }
            };
            assert_eq!(err.kind(), whole.kind(), "split {split}: {err} vs {whole}");
        }
    }
}

/// The server adds the connection's variables to HTTP requests without
/// looking for them (`ListenerContext::add_connection_vars`): the codec
/// must always make the request line's and never the connection's, even
/// for fields named like them.
#[test]
fn the_request_line_variables_are_always_made_and_the_connections_never() {
    for head in [
        &b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://h/p HTTP/1.0\r\n\r\n",
        b"POST /x?q HTTP/1.1\r\nHost: h\r\nServer-Name: s\r\nRemote-Addr: r\r\nScript-Name: n\r\nContent-Length: 0\r\n\r\n",
    ] {
        let req = request(head);
        for name in ["REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL"] {
            let n = req.vars.iter().filter(|(k, _)| k.as_ref() == name.as_bytes()).count();
            assert_eq!(n, 1, "{name} in {:?}", String::from_utf8_lossy(head));
        }
        for name in ["SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT", "SCRIPT_NAME"] {
            assert!(req.var(name.as_bytes()).is_none(), "{name}");
        }
    }
}

#[test]
fn http11_without_host_is_rejected_and_http10_needs_none() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nAccept: a\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert!(!request(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
}
