import GatehouseTestSupport
import Testing

@testable import GatehouseCrypto

/// One AES-GCM known answer: key, IV, plaintext, AAD, ciphertext, tag (hex).
struct GCMVector: Sendable, CustomTestStringConvertible {
    let name: String
    let key: String
    let iv: String
    let plaintext: String
    let aad: String
    let ciphertext: String
    let tag: String
    var testDescription: String { name }
}

let gcmVectors: [GCMVector] = [
    // NIST CAVP gcmEncryptExtIV128.rsp, [Keylen=128 IVlen=96 PTlen=0 AADlen=0 Taglen=128] Count = 0
    GCMVector(
        name: "CAVP 128 PT0 AAD0 #0", key: "11754cd72aec309bf52f7687212e8957", iv: "3c819d9a9bed087615030b65",
        plaintext: "", aad: "", ciphertext: "", tag: "250327c674aaf477aef2675748cf6971"),
    // gcmEncryptExtIV128.rsp, [Keylen=128 IVlen=96 PTlen=0 AADlen=128 Taglen=128] Count = 0
    GCMVector(
        name: "CAVP 128 PT0 AAD128 #0", key: "77be63708971c4e240d1cb79e8d77feb", iv: "e0e00f19fed7ba0136a797f3",
        plaintext: "", aad: "7a43ec1d9c0a5a78a0b16533a6213cab", ciphertext: "", tag: "209fcc8d3675ed938e9c7166709dd946"),
    // gcmEncryptExtIV128.rsp, [Keylen=128 IVlen=96 PTlen=128 AADlen=128 Taglen=128] Count = 0
    GCMVector(
        name: "CAVP 128 PT128 AAD128 #0", key: "c939cc13397c1d37de6ae0e1cb7c423c", iv: "b3d8cc017cbb89b39e0f67e2",
        plaintext: "c3b3c41f113a31b73d9a5cd432103069", aad: "24825602bd12a984e0092d3e448eda5f",
        ciphertext: "93fe7d9e9bfd10348a5606e5cafa7354", tag: "0032a1dc85f1c9786925a2e71d8272dd"),
    // gcmEncryptExtIV256.rsp, [Keylen=256 IVlen=96 PTlen=0 AADlen=0 Taglen=128] Count = 0
    GCMVector(
        name: "CAVP 256 PT0 AAD0 #0", key: "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
        iv: "516c33929df5a3284ff463d7", plaintext: "", aad: "", ciphertext: "", tag: "bdc1ac884d332457a1d2664f168c76f0"),
    // gcmEncryptExtIV256.rsp, [Keylen=256 IVlen=96 PTlen=128 AADlen=128 Taglen=128] Count = 0
    GCMVector(
        name: "CAVP 256 PT128 AAD128 #0", key: "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b",
        iv: "ac93a1a6145299bde902f21a", plaintext: "2d71bcfa914e4ac045b2aa60955fad24",
        aad: "1e0889016f67601c8ebea4943bc23ad6", ciphertext: "8995ae2e6df3dbf96fac7b7137bae67f",
        tag: "eca5aa77d51d4a0a14d9c51e1da474ab"),
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 1-4 and 13-16.
    GCMVector(
        name: "GCM spec TC1", key: "00000000000000000000000000000000", iv: "000000000000000000000000",
        plaintext: "", aad: "", ciphertext: "", tag: "58e2fccefa7e3061367f1d57a4e7455a"),
    GCMVector(
        name: "GCM spec TC2", key: "00000000000000000000000000000000", iv: "000000000000000000000000",
        plaintext: "00000000000000000000000000000000", aad: "", ciphertext: "0388dace60b6a392f328c2b971b2fe78",
        tag: "ab6e47d42cec13bdf53a67b21257bddf"),
    GCMVector(
        name: "GCM spec TC3", key: "feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
            + "b16aedf5aa0de657ba637b391aafd255",
        aad: "",
        ciphertext: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05"
            + "1ba30b396a0aac973d58e091473f5985",
        tag: "4d5c2af327cd64a62cf35abd2ba6fab4"),
    GCMVector(
        name: "GCM spec TC4", key: "feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
            + "b16aedf5aa0de657ba637b39",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        ciphertext: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05"
            + "1ba30b396a0aac973d58e091",
        tag: "5bc94fbc3221a5db94fae95ae7121a47"),
    GCMVector(
        name: "GCM spec TC13", key: String(repeating: "00", count: 32), iv: "000000000000000000000000",
        plaintext: "", aad: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
    GCMVector(
        name: "GCM spec TC14", key: String(repeating: "00", count: 32), iv: "000000000000000000000000",
        plaintext: "00000000000000000000000000000000", aad: "", ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
        tag: "d0d1c8a799996bf0265b98b5d48ab919"),
    GCMVector(
        name: "GCM spec TC15", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
            + "b16aedf5aa0de657ba637b391aafd255",
        aad: "",
        ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
            + "c5f61e6393ba7a0abcc9f662898015ad",
        tag: "b094dac5d93471bdec1a502270e3cc6c"),
    GCMVector(
        name: "GCM spec TC16", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
            + "b16aedf5aa0de657ba637b39",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
            + "c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
]

@Suite("AES-GCM")
struct AESGCMTests {
    @Test("known answers encrypt exactly", arguments: gcmVectors)
    func encrypt(_ v: GCMVector) throws {
        let key = try SymmetricKey(hex: v.key)
        let box = try AESGCM.seal(
            Fixtures.hex(v.plaintext), using: key, nonce: try AESGCM.Nonce(bytes: Fixtures.hex(v.iv)),
            authenticating: Fixtures.hex(v.aad))
        #expect(Fixtures.hexString(box.ciphertext) == v.ciphertext)
        #expect(Fixtures.hexString(box.tag) == v.tag)
    }

    @Test("known answers decrypt exactly", arguments: gcmVectors)
    func decrypt(_ v: GCMVector) throws {
        let key = try SymmetricKey(hex: v.key)
        let box = AESGCM.SealedBox(
            nonce: try AESGCM.Nonce(bytes: Fixtures.hex(v.iv)),
            ciphertext: Fixtures.hex(v.ciphertext), tag: Fixtures.hex(v.tag))
        let plaintext = try AESGCM.open(box, using: key, authenticating: Fixtures.hex(v.aad))
        #expect(Fixtures.hexString(plaintext) == v.plaintext)
    }

    /// Decrypt cases that must FAIL: each known answer with one bit flipped in the
    /// tag, the ciphertext or the AAD, or opened under another key.
    @Test("altered known answers fail authentication", arguments: gcmVectors)
    func decryptFails(_ v: GCMVector) throws {
        let key = try SymmetricKey(hex: v.key)
        let nonce = try AESGCM.Nonce(bytes: Fixtures.hex(v.iv))
        let aad = Fixtures.hex(v.aad)
        var badTag = Fixtures.hex(v.tag)
        badTag[15] ^= 0x01
        var attempts: [(AESGCM.SealedBox, [UInt8], SymmetricKey)] = [
            (AESGCM.SealedBox(nonce: nonce, ciphertext: Fixtures.hex(v.ciphertext), tag: badTag), aad, key),
            (
                AESGCM.SealedBox(nonce: nonce, ciphertext: Fixtures.hex(v.ciphertext), tag: Fixtures.hex(v.tag)),
                aad + [0], key
            ),
            (
                AESGCM.SealedBox(nonce: nonce, ciphertext: Fixtures.hex(v.ciphertext), tag: Fixtures.hex(v.tag)), aad,
                try SymmetricKey.random(size: key.size)
            ),
        ]
        if !v.ciphertext.isEmpty {
            var badCiphertext = Fixtures.hex(v.ciphertext)
            badCiphertext[0] ^= 0x80
            attempts.append(
                (AESGCM.SealedBox(nonce: nonce, ciphertext: badCiphertext, tag: Fixtures.hex(v.tag)), aad, key))
        }
        for (box, aad, key) in attempts {
            let error = #expect(throws: CryptoError.self) { try AESGCM.open(box, using: key, authenticating: aad) }
            #expect(error?.code == .authenticationFailed)
        }
    }

    @Test("the reusable cipher gives the same answers and works in place")
    func reusableCipher() throws {
        let v = gcmVectors[8]  // TC4: plaintext and AAD
        let cipher = try AESGCMCipher(key: try SymmetricKey(hex: v.key))
        let nonce = Fixtures.hex(v.iv)
        let aad = Fixtures.hex(v.aad)
        for _ in 0..<3 {
            var buffer = Fixtures.hex(v.plaintext)
            var tag = [UInt8](repeating: 0, count: 16)
            try nonce.withUnsafeBytes { n in
                try aad.withUnsafeBytes { a in
                    try buffer.withUnsafeMutableBytes { b in
                        try tag.withUnsafeMutableBytes { t in
                            try cipher.seal(
                                plaintext: UnsafeRawBufferPointer(b), nonce: n, associatedData: a,
                                ciphertext: b, tag: t)
                        }
                    }
                }
            }
            #expect(Fixtures.hexString(buffer) == v.ciphertext)
            #expect(Fixtures.hexString(tag) == v.tag)
            try nonce.withUnsafeBytes { n in
                try aad.withUnsafeBytes { a in
                    try buffer.withUnsafeMutableBytes { b in
                        try tag.withUnsafeBytes { t in
                            try cipher.open(
                                ciphertext: UnsafeRawBufferPointer(b), nonce: n, associatedData: a, tag: t,
                                plaintext: b)
                        }
                    }
                }
            }
            #expect(Fixtures.hexString(buffer) == v.plaintext)
        }
    }

    @Test("a failed open wipes the output buffer")
    func failedOpenWipes() throws {
        let cipher = try AESGCMCipher(key: try SymmetricKey.random())
        let ciphertext = [UInt8](repeating: 0xAB, count: 32)
        var out = [UInt8](repeating: 0x55, count: 32)
        let nonce = [UInt8](repeating: 1, count: 12)
        let tag = [UInt8](repeating: 2, count: 16)
        let error = #expect(throws: CryptoError.self) {
            try ciphertext.withUnsafeBytes { c in
                try nonce.withUnsafeBytes { n in
                    try tag.withUnsafeBytes { t in
                        try out.withUnsafeMutableBytes { o in
                            try cipher.open(
                                ciphertext: c, nonce: n,
                                associatedData: UnsafeRawBufferPointer(start: nil, count: 0), tag: t, plaintext: o)
                        }
                    }
                }
            }
        }
        #expect(error?.code == .authenticationFailed)
        #expect(out == [UInt8](repeating: 0, count: 32))
    }

    @Test("wrong nonce and tag sizes are refused with a clear error")
    func sizes() throws {
        #expect(throws: CryptoError.self) { try AESGCM.Nonce(bytes: [UInt8](repeating: 0, count: 8)) }
        let key = try SymmetricKey.random()
        let box = AESGCM.SealedBox(nonce: try AESGCM.Nonce.random(), ciphertext: [1, 2], tag: [1, 2, 3])
        let error = #expect(throws: CryptoError.self) { try AESGCM.open(box, using: key) }
        #expect(error?.code == .invalidInput)
        #expect(error?.message.contains("16 bytes") == true)
    }
}
