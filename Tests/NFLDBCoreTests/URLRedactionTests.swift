import NFLDBCore
import Testing

@Suite("URLRedaction: credential values out of URLs that are stored, logged and shown")
struct URLRedactionTests {
    @Test("query items split at & and ;, path parameters, fragments and user info", arguments: [
        ("https://h/g.csv?a=1;X-Amz-Signature=S1&b=2", "https://h/g.csv?a=1;X-Amz-Signature=REDACTED&b=2", true),
        ("https://h/g.csv;sig=S2;v=1/x?season=2024", "https://h/g.csv;sig=REDACTED;v=1/x?season=2024", true),
        ("https://alice:pw@h/g.csv?season=2024#access_token=F", "https://h/g.csv?season=2024", true),
        ("https:/alice:pw@h/g.csv", "https:/h/g.csv", true),
        (" https://u:PWSP19@h/g.csv\t", "https://h/g.csv", true),
        ("https:u:PWS2@127.0.0.1:18731/g.csv", "https:********@127.0.0.1:18731/g.csv", true),
        ("http//u:PWS3@h/g.csv", "http//u:********@h/g.csv", true),
        ("//u:PWS5@h/g.csv", "//u:********@h/g.csv", true),
        ("u:PWS4@h/g.csv", "u:********@h/g.csv", true),
        ("/data/team@home/g.csv", "/data/team@home/g.csv", false),
        ("https://h/g.csv?token&x=1&token=", "https://h/g.csv?token=REDACTED&x=1&token=REDACTED", true),
        ("https://h/g.csv?X%2DAmz%2DCredential=C&Api+Key=K", "https://h/g.csv?X%2DAmz%2DCredential=REDACTED&Api+Key=REDACTED", true),
        ("https://h/g.csv", "https://h/g.csv", false),
        ("https://h/g.csv?", "https://h/g.csv?", false),
    ])
    func redacts(input: String, expected: String, redacted: Bool) {
        let result = URLRedaction.redact(input)
        #expect(result.text == expected, "\(input)")
        #expect(result.redacted == redacted, "\(input)")
    }

    @Test("credential names that real services use are caught; ordinary ones are kept")
    func names() {
        for name in ["X-Amz-Signature", "X-Goog-Credential", "X-Amz-Security-Token", "sig", "SIG", "tempauth", "hdnts", "jwt", "verify",
                     "passphrase", "private_key", "auth_key", "access_token", "api-key", "apikey", "client_secret", "password", "key", "code"] {
            #expect(URLRedaction.isCredentialParameter(name), "\(name)")
        }
        for name in ["season", "page", "format", "v", "week", "keyword", "team", "date"] {
            #expect(!URLRedaction.isCredentialParameter(name), "\(name)")
        }
    }
}
