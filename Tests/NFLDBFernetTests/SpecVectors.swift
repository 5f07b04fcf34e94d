import Foundation

/// The published Fernet test vectors, copied verbatim from https://github.com/fernet/spec
/// (generate.json and verify.json at commit 1f13494, invalid.json at commit 8a21920 — the
/// version-0x80 files that Python `cryptography` also tests against).
enum SpecVectors {
    static let generate = #"""
    [
      {
        "token": "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
        "now": "1985-10-26T01:20:00-07:00",
        "iv": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        "src": "hello",
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      }
    ]
    """#

    static let verify = #"""
    [
      {
        "token": "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "src": "hello",
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      }
    ]
    """#

    static let invalid = #"""
    [
      {
        "desc": "incorrect mac",
        "token": "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "too short",
        "token": "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "invalid base64",
        "token": "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "payload size not multiple of block size",
        "token": "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "payload padding error",
        "token": "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "far-future TS (unacceptable clock skew)",
        "token": "gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-iX9b_qXQcw==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "expired TTL",
        "token": "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
        "now": "1985-10-26T01:21:31-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "incorrect IV (causes padding error)",
        "token": "gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1TIvcZjK1zQ==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "trailing characters after b64 padding",
        "token": "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==trailingdata",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "invalid characters in b64",
        "token": "*gAAAAAAdwJ6wAAECAwQFBgcI!CQoLDA0ODy021?cpGVWKZ_eEwC@GM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      },
      {
        "desc": "invalid non-urlsafe characters in b64",
        "token": "gAAAAAAdwJ6wAAEC/AwQFBgcICQoLDA0ODy+021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
        "now": "1985-10-26T01:20:01-07:00",
        "ttl_sec": 60,
        "secret": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
      }
    ]
    """#

    static func entries(_ json: String) throws -> [[String: Any]] {
        try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
    }

    static func unixTime(_ text: String) -> Int64 {
        let formatter = ISO8601DateFormatter()
        return Int64(formatter.date(from: text)!.timeIntervalSince1970)
    }
}
