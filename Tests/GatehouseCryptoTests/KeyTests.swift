import GatehouseTestSupport
import Testing

@testable import GatehouseCrypto

@Suite("SymmetricKey, KCV, key wrap")
struct KeyTests {
    @Test("KCV of known keys matches openssl enc -aes-*-ecb of a zero block")
    func keyCheckValues() throws {
        // printf '\0%.0s' {1..16} | openssl enc -aes-128-ecb -nopad -K 00..00 | xxd -p → 66e94bd4…
        #expect(try SymmetricKey(hex: String(repeating: "0", count: 32)).keyCheckValue == "66E94B")
        // same with -aes-256-ecb and a 64-digit zero key → dc95c078…
        #expect(try SymmetricKey(hex: String(repeating: "0", count: 64)).keyCheckValue == "DC95C0")
        // -K 000102030405060708090A0B0C0D0E0F → c6a13b37…
        let key = try SymmetricKey(hex: "000102030405060708090a0b0c0d0e0f")
        #expect(key.keyCheckValue == "C6A13B")
        #expect(KeyCheckValue.compute(for: key) == "C6A13B")
    }

    @Test("descriptions show size and KCV, never key bytes")
    func noLeak() throws {
        let key = try SymmetricKey(hex: "00112233445566778899AABBCCDDEEFF")
        #expect(key.description == "SymmetricKey(AES-128, KCV \(key.keyCheckValue))")
        var dumped = ""
        dump(key, to: &dumped)
        for text in [key.description, key.debugDescription, String(describing: key), String(reflecting: key), dumped] {
            #expect(!text.lowercased().contains("00112233"))
            #expect(!text.lowercased().contains("ccddeeff"))
        }
    }

    @Test("hex parsing accepts 32/64 digits either case and explains failures without echoing input")
    func hexParsing() throws {
        let lower = try SymmetricKey(hex: "  00112233445566778899aabbccddeeff\n")
        let upper = try SymmetricKey(hex: "00112233445566778899AABBCCDDEEFF")
        #expect(lower == upper)
        #expect(lower.size == .bits128)
        #expect(lower.unsafeHexString() == "00112233445566778899aabbccddeeff")
        #expect(try SymmetricKey(hex: String(repeating: "ab", count: 32)).size == .bits256)

        let short = #expect(throws: CryptoError.self) { try SymmetricKey(hex: "0011") }
        #expect(short?.code == .invalidKey)
        #expect(short?.message.contains("got 4 characters") == true)
        let bad = #expect(throws: CryptoError.self) { try SymmetricKey(hex: "00112233445566778899aabbccddeeZZ") }
        #expect(bad?.message.contains("position 31") == true)
        #expect(bad?.message.contains("ZZ") == false)
        #expect(throws: CryptoError.self) { try SymmetricKey(bytes: [UInt8](repeating: 0, count: 24)) }
        #expect(try SymmetricKey.random(size: .bits256).byteCount == 32)
        #expect(try SymmetricKey.random() != (try SymmetricKey.random()))
    }

    struct WrapVector: Sendable {
        let kek: String
        let key: String
        let wrapped: String
    }

    /// RFC 3394 section 4 (the cases with 128- and 256-bit KEKs).
    static let rfc3394: [WrapVector] = [
        // 4.1 Wrap 128 bits of Key Data with a 128-bit KEK
        WrapVector(
            kek: "000102030405060708090A0B0C0D0E0F", key: "00112233445566778899AABBCCDDEEFF",
            wrapped: "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
        // 4.3 Wrap 128 bits of Key Data with a 256-bit KEK
        WrapVector(
            kek: "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            key: "00112233445566778899AABBCCDDEEFF", wrapped: "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"),
        // 4.5 Wrap 192 bits of Key Data with a 256-bit KEK
        WrapVector(
            kek: "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            key: "00112233445566778899AABBCCDDEEFF0001020304050607",
            wrapped: "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"),
        // 4.6 Wrap 256 bits of Key Data with a 256-bit KEK
        WrapVector(
            kek: "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            key: "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
            wrapped: "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"),
    ]

    @Test("RFC 3394 section 4 vectors wrap and unwrap", arguments: rfc3394)
    func rfc3394Vectors(_ v: WrapVector) throws {
        let kek = try SymmetricKey(hex: v.kek)
        let wrapped = try AESKeyWrap.wrap(bytes: Fixtures.hex(v.key), kek: kek)
        #expect(Fixtures.hexString(wrapped) == v.wrapped.lowercased())
        #expect(try AESKeyWrap.unwrap(bytes: wrapped, kek: kek) == Fixtures.hex(v.key))
        if v.key.count != 48 {
            let key = try SymmetricKey(hex: v.key)
            #expect(try AESKeyWrap.wrap(key, kek: kek) == wrapped)
            #expect(try AESKeyWrap.unwrap(wrapped, kek: kek) == key)
        }
    }

    @Test("unwrap under the wrong KEK or of altered bytes fails its integrity check")
    func unwrapFailures() throws {
        let kek = try SymmetricKey(hex: "000102030405060708090A0B0C0D0E0F")
        let wrapped = Fixtures.hex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
        let wrongKEK = #expect(throws: CryptoError.self) {
            try AESKeyWrap.unwrap(wrapped, kek: try SymmetricKey(hex: "000102030405060708090A0B0C0D0E0E"))
        }
        #expect(wrongKEK?.code == .unwrapFailed)
        #expect(wrongKEK?.message.contains("KEK is wrong") == true)
        for i in wrapped.indices {
            var altered = wrapped
            altered[i] ^= 0x04
            let error = #expect(throws: CryptoError.self) { try AESKeyWrap.unwrap(altered, kek: kek) }
            #expect(error?.code == .unwrapFailed)
        }
        let short = #expect(throws: CryptoError.self) { try AESKeyWrap.unwrap(wrapped.prefix(16), kek: kek) }
        #expect(short?.code == .invalidInput)
    }

    /// RFC 5649 section 6: both examples use a 192-bit KEK, which the public API does
    /// not accept, so they go through the internal EVP path with raw KEK bytes.
    @Test("RFC 5649 section 6 vectors (padded wrap)")
    func rfc5649Vectors() throws {
        let kek = Fixtures.hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
        let cases: [(String, String)] = [
            (
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"
            ),
            ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
        ]
        for (key, expected) in cases {
            let input = Fixtures.hex(key)
            let wrapped = try kek.withUnsafeBytes { k in
                try input.withUnsafeBytes { try AESKeyWrap.run(.wrapPad, encrypt: true, $0, kekBytes: k) }
            }
            #expect(Fixtures.hexString(wrapped) == expected)
            let unwrapped = try kek.withUnsafeBytes { k in
                try wrapped.withUnsafeBytes { try AESKeyWrap.run(.wrapPad, encrypt: false, $0, kekBytes: k) }
            }
            #expect(Fixtures.hexString(unwrapped) == key)
        }
    }

    @Test("padded wrap round-trips odd lengths under AES-256 and detects a wrong KEK")
    func paddedRoundTrip() throws {
        let kek = try SymmetricKey.random(size: .bits256)
        for length in [1, 7, 8, 9, 20, 33] {
            let data = (0..<length).map { UInt8($0 &* 37 & 0xFF) }
            let wrapped = try AESKeyWrap.wrapWithPadding(data, kek: kek)
            #expect(wrapped.count == ((length + 7) / 8) * 8 + 8)
            #expect(try AESKeyWrap.unwrapWithPadding(wrapped, kek: kek) == data)
            let error = #expect(throws: CryptoError.self) {
                try AESKeyWrap.unwrapWithPadding(wrapped, kek: try SymmetricKey.random(size: .bits256))
            }
            #expect(error?.code == .unwrapFailed)
        }
    }
}

@Suite("Digests, constant-time compare, random")
struct DigestTests {
    @Test("SHA-256 known answers (FIPS 180-4 examples)")
    func sha256() throws {
        #expect(
            Hex.encode(try SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )
        #expect(try SHA256.hexDigest(of: "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            try SHA256.hexDigest(of: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("HMAC-SHA256 known answers (RFC 4231 test cases 1 and 2)")
    func hmac() throws {
        let mac1 = try HMACSHA256.authenticationCode(
            for: Array("Hi There".utf8), key: [UInt8](repeating: 0x0b, count: 20))
        #expect(Hex.encode(mac1) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        let mac2 = try HMACSHA256.authenticationCode(
            for: Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8))
        #expect(Hex.encode(mac2) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(try HMACSHA256.isValid(mac2, for: Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8)))
        #expect(try !HMACSHA256.isValid(mac2, for: Array("what do ya want for nothing!".utf8), key: Array("Jefe".utf8)))
    }

    @Test("constant-time compare")
    func constantTime() {
        #expect(ConstantTime.isEqual([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.isEqual([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.isEqual([1, 2, 3], [1, 2]))
        #expect(ConstantTime.isEqual([UInt8](), [UInt8]()))
    }

    @Test("random bytes differ and have the requested length")
    func random() throws {
        let a = try SecureRandom.bytes(count: 32)
        let b = try SecureRandom.bytes(count: 32)
        #expect(a.count == 32)
        #expect(a != b)
        #expect(try SecureRandom.bytes(count: 0).isEmpty)
    }

    @Test("hex helpers")
    func hex() {
        #expect(Hex.encode([0x00, 0xAB, 0xFF]) == "00abff")
        #expect(Hex.encode([0x00, 0xAB, 0xFF], uppercase: true) == "00ABFF")
        #expect(Hex.decode("00abFF") == [0x00, 0xAB, 0xFF])
        #expect(Hex.decode("0") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test("an empty OpenSSL error queue still gives a usable error")
    func errorQueue() {
        let error = CryptoError.openSSL("TEST_operation")
        #expect(error.message == "TEST_operation failed")
        #expect(error.nativeCode == nil)
        #expect(error.code == .library)
    }
}
