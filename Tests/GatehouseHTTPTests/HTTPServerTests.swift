import Foundation
import GatehouseCore
import GatehouseHTTP
import Synchronization
import Testing

/// The routes most tests use: public health, a parameterised read, a write that echoes JSON.
private func standardRoutes(_ router: inout Router) {
    router.get("/healthz", access: .public) { _ in .text("ok\n") }
    router.get("/devices/{id}/entitlements", access: .requires(.read)) { request in
        try .json([
            "device": request.pathParameters["id"] ?? "",
            "limit": request.query("limit") ?? "",
            "caller": request.caller?.name ?? "",
        ])
    }
    router.post("/echo", access: .requires(.write)) { request in
        HTTPResponse.json(status: .accepted, bytes: request.body)
    }
    router.get("/boom", access: .public) { _ in
        throw GatehouseError(.database, "SELECT failed on /var/lib/secret.db")
    }
    router.get("/busy", access: .public) { _ in throw GatehouseError(.unavailable, "the database is starting") }
}

@Suite("HTTP server over real sockets", .serialized)
struct HTTPServerTests {
    @Test("routes with parameters, decoded query, caller name; X-Request-Id on every response")
    func routing() throws {
        let test = try TestServer(routes: standardRoutes)
        defer { test.server.shutdown() }
        let result = try Curl.run([
            "-i", "-H", "Authorization: Bearer \(TestTokens.reader)",
            test.url("/devices/stb%2F42/entitlements?limit=10%20x&other=1"),
        ])
        #expect(result.status == 200)
        #expect(result.json?["device"] as? String == "stb/42")
        #expect(result.json?["limit"] as? String == "10 x")
        #expect(result.json?["caller"] as? String == "sms-reader")
        #expect(result.header("Content-Type") == "application/json")
        #expect(result.header("X-Request-Id")?.count == 32)

        let health = try Curl.run(["-i", "-H", "X-Request-Id: sms-abc.123", test.url("/healthz")])
        #expect(health.status == 200)
        #expect(health.body == "ok\n")
        #expect(health.header("X-Request-Id") == "sms-abc.123")

        let insane = try Curl.run(["-i", "-H", "X-Request-Id: has spaces {and} braces", test.url("/healthz")])
        #expect(insane.header("X-Request-Id")?.count == 32)

        let head = try Curl.run(["-I", test.url("/healthz")])
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "3")
    }

    @Test("404 for unknown paths, 405 with Allow for a wrong method, in the JSON error shape")
    func notFoundAndMethodNotAllowed() throws {
        let test = try TestServer(routes: standardRoutes)
        defer { test.server.shutdown() }
        let missing = try Curl.run(["-i", "-H", "X-Request-Id: req-1", test.url("/nope")])
        #expect(missing.status == 404)
        #expect(missing.error?["code"] as? String == "route_not_found")
        #expect(missing.error?["request_id"] as? String == "req-1")
        #expect((missing.error?["message"] as? String)?.isEmpty == false)
        #expect(missing.header("Content-Type") == "application/json")

        let wrongMethod = try Curl.run(["-i", "-X", "DELETE", test.url("/healthz")])
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.header("Allow") == "GET, HEAD")
        #expect(wrongMethod.error?["code"] as? String == "method_not_allowed")
    }

    @Test("errors map to statuses; a 500 shows only the request id, the detail goes to the log")
    func errorMapping() throws {
        let log = MemorySink()
        var router = Router(authenticator: nil, logger: Logger(label: "router", sink: log))
        standardRoutes(&router)
        let test = try TestServer(handler: router.handler)
        defer { test.server.shutdown() }

        let boom = try Curl.run(["-i", test.url("/boom")])
        #expect(boom.status == 500)
        #expect(boom.error?["code"] as? String == "internal")
        #expect(!boom.body.contains("SELECT"))
        let id = try #require(boom.header("X-Request-Id"))
        #expect(boom.error?["request_id"] as? String == id)
        #expect(log.lines.contains { $0.contains("SELECT failed") && $0.contains(id) })

        let busy = try Curl.run(["-i", test.url("/busy")])
        #expect(busy.status == 503)
        #expect(busy.header("Retry-After") == "5")
        #expect(busy.error?["code"] as? String == "unavailable")
        #expect(busy.error?["message"] as? String == "the database is starting")
    }

    @Test("bearer tokens: 401 with WWW-Authenticate, 403 for a missing scope, 200 with the scope")
    func authentication() throws {
        let test = try TestServer(routes: standardRoutes)
        defer { test.server.shutdown() }
        let body = #"{"device":"stb-1"}"#
        let none = try Curl.run([
            "-i", "-H", "Content-Type: application/json", "--data-binary", body, test.url("/echo"),
        ])
        #expect(none.status == 401)
        #expect(none.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(none.error?["code"] as? String == "authentication")

        let wrong = try Curl.run([
            "-i", "-H", "Authorization: Bearer not-a-token", "--data-binary", body, test.url("/echo"),
        ])
        #expect(wrong.status == 401)

        let basic = try Curl.run(["-i", "-u", "user:pass", "--data-binary", body, test.url("/echo")])
        #expect(basic.status == 401)

        let reader = try Curl.run([
            "-i", "-H", "Authorization: Bearer \(TestTokens.reader)", "--data-binary", body, test.url("/echo"),
        ])
        #expect(reader.status == 403)
        #expect(reader.error?["code"] as? String == "forbidden")

        let writer = try Curl.run([
            "-i", "-H", "authorization: bearer \(TestTokens.writer)", "--data-binary", body, test.url("/echo"),
        ])
        #expect(writer.status == 202)
        #expect(writer.body == body)
    }

    @Test("a body over the limit gets 413 without being buffered, and the server keeps serving")
    func bodyLimit() throws {
        let test = try TestServer(routes: standardRoutes)
        defer { test.server.shutdown() }
        let auth = ["-H", "Authorization: Bearer \(TestTokens.writer)"]
        // Sent whole (no Expect), 8 x the limit: read and dropped, then answered, so no reset
        // can eat the 413.
        let drained = try Curl.run(
            ["-i"] + auth + ["-H", "Expect:", "--data-binary", "@-", test.url("/too-big/drained")],
            input: Data(repeating: UInt8(ascii: "a"), count: 8 * 65536))
        #expect(drained.status == 413)
        #expect(drained.error?["code"] as? String == "payload_too_large")

        // With Expect: 100-continue the 413 comes before any of the body is sent.
        let expecting = try Curl.run(
            ["-i"] + auth + ["-H", "Expect: 100-continue", "--data-binary", "@-", test.url("/too-big/expect")],
            input: Data(repeating: UInt8(ascii: "e"), count: 200_000))
        #expect(expecting.status == 413)

        // Far over the limit (more than 16 x): answered at once and cut off, nothing read.
        _ = try Curl.run(
            ["-i"] + auth + ["-H", "Expect:", "--data-binary", "@-", test.url("/too-big/huge")],
            input: Data(repeating: UInt8(ascii: "h"), count: 17 * 65536))

        // Chunked: no Content-Length, so the limit trips while the body streams in.
        let chunked = try Curl.run(
            ["-i"] + auth + ["-H", "Transfer-Encoding: chunked", "--data-binary", "@-", test.url("/echo")],
            input: Data(repeating: UInt8(ascii: "b"), count: 200_000))
        #expect(chunked.status == 413)

        let justUnder = Data(repeating: UInt8(ascii: "c"), count: 65536)
        let fits = try Curl.run(
            ["-s", "-o", "/dev/null", "-w", "%{http_code}"] + auth + ["--data-binary", "@-", test.url("/echo")],
            input: justUnder)
        #expect(fits.stdout == "202")
        let log = test.stopAndReadLog().filter { $0.contains("\"msg\":\"http.request\"") }
        // How many body bytes each 413 read: all of the drained one, none of the others.
        func bytesRead(_ path: String) -> String? {
            guard let line = log.first(where: { $0.contains("\"http.path\":\"\(path)\"") }),
                line.contains("\"http.status\":\"413\""),
                let range = line.range(of: #""http.request_bytes":""#)
            else { return nil }
            return String(line[range.upperBound...].prefix { $0 != "\"" })
        }
        #expect(bytesRead("/too-big/drained") == String(8 * 65536))
        #expect(bytesRead("/too-big/expect") == "0")
        #expect(bytesRead("/too-big/huge") == "0")
    }

    @Test("keep-alive: several requests share one connection")
    func keepAlive() throws {
        let test = try TestServer(routes: standardRoutes)
        defer { test.server.shutdown() }
        let url = test.url("/healthz")
        let result = try Curl.run([
            "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ", url, url, url,
        ])
        #expect(result.exitCode == 0)
        #expect(result.stdout == "1 0 0 ")
    }

    @Test("50 parallel requests are all answered")
    func concurrentRequests() throws {
        let active = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
        let test = try TestServer { request in
            let now = active.add(1, ordering: .relaxed).newValue
            peak.max(now, ordering: .relaxed)
            usleep(50_000)
            active.subtract(1, ordering: .relaxed)
            return .text(request.path)
        }
        defer { test.server.shutdown() }
        let urls = (0..<50).map { test.url("/r/\($0)") }
        let result = try Curl.run(
            ["--parallel", "--parallel-max", "50", "-w", "%{http_code}\n"] + urls.flatMap { ["-o", "/dev/null", $0] })
        let codes = result.stdout.split(separator: "\n")
        #expect(codes.count == 50)
        #expect(codes.allSatisfy { $0 == "200" })
        #expect(peak.load(ordering: .relaxed) > 1)
        #expect(test.stopAndReadLog().filter { $0.contains("\"msg\":\"http.request\"") }.count == 50)
    }

    @Test("deferred answers: one event loop answers a GET while 8 POSTs wait, each gets its own answer")
    func deferredAnswersHoldNoThread() throws {
        var configuration = TestServer.defaultConfiguration()
        configuration.threadCount = 1
        let pending = Mutex<[(DeferredResponse, [UInt8])]>([])
        let test = try TestServer(configuration: configuration) { request in
            if request.method == .post {
                let answer = DeferredResponse()
                pending.withLock { $0.append((answer, request.body)) }
                return .deferred(answer)
            }
            return .text("read \(request.path)")
        }
        defer { test.server.shutdown() }
        let writes = try (0..<8).map { n in
            try Curl.start(["-i", "-X", "POST", "-H", "Content-Type: application/json", "-d", #"{"n":\#(n)}"#,
                test.url("/write/\(n)")])
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while pending.withLock({ $0.count }) < 8 && ContinuousClock.now < deadline { usleep(2_000) }
        // All eight are waiting at once on the one event-loop thread...
        #expect(pending.withLock { $0.count } == 8)
        // ...which still serves reads.
        let read = try Curl.run(["--max-time", "5", test.url("/r/1")])
        #expect(read.exitCode == 0)
        #expect(read.stdout == "read /r/1")
        // Answered from other threads, in reverse order; one of them resolved twice (ignored).
        let answers = pending.withLock { $0 }
        DispatchQueue.concurrentPerform(iterations: answers.count) { index in
            let (answer, body) = answers[answers.count - 1 - index]
            answer.resolve(.json(status: .accepted, bytes: body))
            if index == 0 { answer.resolve(.text("second answer", status: 500)) }
        }
        for (n, write) in writes.enumerated() {
            let result = write.wait()
            #expect(result.status == 202)
            #expect(result.body == #"{"n":\#(n)}"#)  // each answer on its own connection
            #expect(result.header("X-Request-Id") != nil)
        }
        let log = test.stopAndReadLog().filter { $0.contains("\"msg\":\"http.request\"") }
        #expect(log.filter { $0.contains("\"http.method\":\"POST\"") && $0.contains("\"http.status\":\"202\"") }.count == 8)
    }

    @Test("a deferred answer resolved before the handler returns goes out at once")
    func deferredAnswerAlreadyResolved() throws {
        let test = try TestServer { request in
            let answer = DeferredResponse()
            answer.resolve(.text("early \(request.path)"))
            return .deferred(answer)
        }
        defer { test.server.shutdown() }
        let result = try Curl.run(["-i", test.url("/now")])
        #expect(result.status == 200)
        #expect(result.body == "early /now")
        // A router called without a server waits for the answer itself.
        let answer = DeferredResponse()
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { answer.resolve(.text("later")) }
        #expect(HTTPResponse.deferred(answer).resolved().body == Array("later".utf8))
    }

    @Test("shutdown waits for a deferred answer, sends it, then stops")
    func shutdownWaitsForDeferredAnswer() throws {
        let entered = DispatchSemaphore(value: 0)
        let test = try TestServer { request in
            let answer = DeferredResponse()
            let body = request.body
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(400)) {
                answer.resolve(.json(status: .accepted, bytes: body))
            }
            entered.signal()
            return .deferred(answer)
        }
        let inFlight = try Curl.start(["-i", "-X", "POST", "-d", "{}", test.url("/slow-write")])
        #expect(entered.wait(timeout: .now() + 10) == .success)
        test.server.shutdown()
        let result = inFlight.wait()
        #expect(result.status == 202)
        #expect(result.body == "{}")
        #expect(result.header("Connection")?.lowercased() == "close")
        #expect(!test.server.isRunning)
    }

    @Test("a deferred answer that comes after the grace period still reaches its client")
    func deferredAnswerAfterTheGracePeriod() throws {
        var configuration = TestServer.defaultConfiguration()
        configuration.shutdownGracePeriodSeconds = 0.1
        let entered = DispatchSemaphore(value: 0)
        let test = try TestServer(configuration: configuration) { request in
            let answer = DeferredResponse()
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(600)) {
                answer.resolve(.json(status: .accepted, bytes: Array(#"{"late":true}"#.utf8)))
            }
            entered.signal()
            return .deferred(answer)
        }
        let inFlight = try Curl.start(["-i", "-X", "POST", "-d", "{}", test.url("/late-write")])
        #expect(entered.wait(timeout: .now() + 10) == .success)
        let started = ContinuousClock.now
        test.server.shutdown()
        #expect(ContinuousClock.now - started >= .milliseconds(400), "shutdown waited for the answer")
        let result = inFlight.wait()
        #expect(result.status == 202)
        #expect(result.body == #"{"late":true}"#)
    }

    @Test("a request that comes while the server stops gets a 503 and is not run")
    func requestDuringStopIsRefused() throws {
        var configuration = TestServer.defaultConfiguration()
        configuration.shutdownGracePeriodSeconds = 0.1
        let entered = DispatchSemaphore(value: 0)
        let ran = Mutex<[String]>([])
        let held = Mutex<[DeferredResponse]>([])
        let test = try TestServer(configuration: configuration) { request in
            guard request.method == .post else { return .text("warm") }
            ran.withLock { $0.append(request.path) }
            let answer = DeferredResponse()
            held.withLock { $0.append(answer) }
            entered.signal()
            return .deferred(answer)
        }
        // Whatever happens, every parked answer comes, so the stop ends.
        defer { for answer in held.withLock({ $0 }) { answer.resolve(.text("late", status: 500)) } }
        // A keep-alive connection with one request done, open before the shutdown begins.
        let late = try IdleConnection(port: test.server.boundAddress!.port)
        #expect(late.exchange("GET /warm HTTP/1.1\r\nHost: t\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        // A write parked on its answer holds the stop (after the 0.1 s grace period).
        let inFlight = try Curl.start(["-i", "-X", "POST", "-d", "{}", test.url("/first")])
        #expect(entered.wait(timeout: .now() + 10) == .success)
        let stopped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            test.server.shutdown()
            stopped.signal()
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !test.log.lines.contains(where: { $0.contains(#""msg":"http.stopping""#) }) && ContinuousClock.now < deadline {
            usleep(2_000)
        }
        // The stop is under way: a write now could be stored with no one left to tell.
        let refused = late.exchange("POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
        #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused.prefix(200))")
        #expect(refused.lowercased().contains("retry-after: 1\r\n"))
        #expect(ran.withLock { $0 } == ["/first"])
        held.withLock { $0 }.first?.resolve(.json(status: .accepted, bytes: Array("{}".utf8)))
        #expect(inFlight.wait().status == 202)
        #expect(stopped.wait(timeout: .now() + 10) == .success)
        #expect(!test.server.isRunning)
    }

    @Test("async handlers run in a Task while the worker thread waits; their errors map as usual")
    func asyncHandlers() throws {
        let test = try TestServer { router in
            router.add(.get, "/async/{n}", access: .public) { request async throws in
                try await Task.sleep(for: .milliseconds(20))
                return .text("n=\(request.pathParameters["n"]!)")
            }
            router.add(.get, "/async-missing", access: .public) { _ async throws -> HTTPResponse in
                await Task.yield()
                throw GatehouseError(.notFound, "no such device")
            }
        }
        defer { test.server.shutdown() }
        let one = try Curl.run([test.url("/async/7")])
        #expect(one.stdout == "n=7")
        let missing = try Curl.run(["-i", test.url("/async-missing")])
        #expect(missing.status == 404)
        #expect(missing.error?["message"] as? String == "no such device")
        let urls = (0..<20).map { test.url("/async/\($0)") }
        let many = try Curl.run(
            ["--parallel", "--parallel-max", "20", "-w", "%{http_code}\n"] + urls.flatMap { ["-o", "/dev/null", $0] })
        #expect(many.stdout.split(separator: "\n").filter { $0 == "200" }.count == 20)
    }

    @Test("at the connection limit new clients wait in the backlog until a slot frees")
    func connectionLimit() throws {
        var configuration = TestServer.defaultConfiguration()
        configuration.threadCount = 1
        configuration.connectionLimit = 2
        let test = try TestServer(configuration: configuration, routes: standardRoutes)
        defer { test.server.shutdown() }
        let port = test.server.boundAddress!.port
        var holders = [try IdleConnection(port: port), try IdleConnection(port: port)]
        usleep(200_000)  // let MHD accept both
        let blocked = try Curl.run(["--max-time", "1", "-o", "/dev/null", "-w", "%{http_code}", test.url("/healthz")])
        #expect(blocked.exitCode != 0)

        let waiting = try Curl.start(["-o", "/dev/null", "-w", "%{http_code}", test.url("/healthz")])
        usleep(200_000)
        holders.removeFirst()  // closes one connection: the waiting client gets its slot
        let answered = waiting.wait()
        #expect(answered.stdout == "200")
        _ = holders
    }

    @Test("idle connections are closed after the connection timeout")
    func idleTimeout() throws {
        var configuration = TestServer.defaultConfiguration()
        configuration.connectionTimeoutSeconds = 1
        let test = try TestServer(configuration: configuration, routes: standardRoutes)
        defer { test.server.shutdown() }
        let idle = try IdleConnection(port: test.server.boundAddress!.port)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(idle.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let started = ContinuousClock.now
        var byte: UInt8 = 0
        let received = recv(idle.fd, &byte, 1, 0)
        #expect(received == 0)  // orderly close by the server, not our 5 s receive timeout
        #expect(ContinuousClock.now - started < .seconds(4))
    }

    @Test("a chunked body far past the limit is cut off, and the server keeps serving")
    func chunkedFloodIsCutOff() throws {
        var configuration = TestServer.defaultConfiguration()
        configuration.maximumBodySize = 1024
        let test = try TestServer(configuration: configuration, routes: standardRoutes)
        defer { test.server.shutdown() }
        let flood = try Curl.run(
            [
                "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(TestTokens.writer)",
                "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", test.url("/echo"),
            ], input: Data(repeating: 0x41, count: 1 << 20))
        #expect(flood.stdout != "202")
        let health = try Curl.run(["-o", "/dev/null", "-w", "%{http_code}", test.url("/healthz")])
        #expect(health.stdout == "200")
    }

    @Test("IPv6 loopback")
    func ipv6() throws {
        let test = try TestServer(configuration: TestServer.defaultConfiguration(host: "::1"), routes: standardRoutes)
        defer { test.server.shutdown() }
        #expect(test.baseURL.hasPrefix("http://[::1]:"))
        let result = try Curl.run(["-i", test.url("/healthz")])
        #expect(result.status == 200)
        #expect(test.stopAndReadLog().contains { $0.contains("\"http.remote\":\"::1\"") })
    }

    @Test("shutdown lets a request in flight finish, then refuses connections")
    func gracefulShutdown() throws {
        let entered = DispatchSemaphore(value: 0)
        let test = try TestServer { _ in
            entered.signal()
            usleep(500_000)
            return .text("finished")
        }
        let inFlight = try Curl.start(["-i", test.url("/slow")])
        #expect(entered.wait(timeout: .now() + 10) == .success)
        let url = test.url("/after")
        test.server.shutdown()
        let result = inFlight.wait()
        #expect(result.status == 200)
        #expect(result.body == "finished")
        #expect(result.header("Connection")?.lowercased() == "close")
        #expect(!test.server.isRunning)
        let refused = try Curl.run(["--max-time", "2", url])
        #expect(refused.exitCode == 7)  // couldn't connect
        test.server.shutdown()  // idempotent
    }

    @Test("run() serves until its task is cancelled")
    func runUntilCancelled() async throws {
        let log = MemorySink()
        let server = HTTPServer(
            configuration: TestServer.defaultConfiguration(),
            logger: Logger(label: "t", sink: log)
        ) { _ in .text("ok") }
        let task = Task { try await server.run() }
        var waited = 0
        while server.boundAddress == nil && waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let address = try #require(server.boundAddress)
        let result = try Curl.run(["http://\(address)/"])
        #expect(result.stdout == "ok")
        task.cancel()
        try await task.value
        #expect(!server.isRunning)
    }

    @Test("the access log has one line per request and never headers, query strings or bodies")
    func accessLogHasNoSecrets() throws {
        let test = try TestServer(routes: standardRoutes)
        defer { test.server.shutdown() }
        _ = try Curl.run([
            "-H", "Authorization: Bearer \(TestTokens.writer)", "-H", "X-Device-Key: 00112233445566778899aabbccddeeff",
            "--data-binary", #"{"aes_key":"deadbeefcafebabe0123456789abcdef"}"#, test.url("/echo?token=query-secret"),
        ])
        let lines = test.stopAndReadLog()
        let access = lines.filter { $0.contains("\"msg\":\"http.request\"") }
        #expect(access.count == 1)
        let line = try #require(access.first)
        for field in [
            "http.method", "http.path", "http.status", "http.duration_ms", "http.request_id", "http.request_bytes",
            "http.response_bytes",
        ] {
            #expect(line.contains("\"\(field)\":"))
        }
        #expect(line.contains("\"http.path\":\"/echo\""))
        for secret in [TestTokens.writer, "00112233445566778899aabbccddeeff", "deadbeefcafebabe", "query-secret"] {
            #expect(!lines.contains { $0.contains(secret) }, "log leaks \(secret)")
        }
    }

    @Test("HTTPS with a self-signed certificate")
    func tls() throws {
        try #require(HTTPServerConfiguration.isTLSAvailable)
        let directory = try TemporaryDirectory()
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-keyout", directory.path + "/key.pem", "-out", directory.path + "/cert.pem",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)

        var configuration = TestServer.defaultConfiguration()
        configuration.tls = try .files(
            certificate: directory.path + "/cert.pem", privateKey: directory.path + "/key.pem")
        let test = try TestServer(configuration: configuration, routes: standardRoutes)
        defer { test.server.shutdown() }
        #expect(test.baseURL.hasPrefix("https://"))
        let result = try Curl.run(["-k", "-i", test.url("/healthz")])
        #expect(result.status == 200)
        #expect(result.body == "ok\n")
        let plain = try Curl.run(["--max-time", "3", "http://\(test.server.boundAddress!)/healthz"])
        #expect(plain.exitCode != 0)
    }

    @Test("a port in use fails start with an io error that says why")
    func addressInUse() throws {
        let first = try TestServer(routes: standardRoutes)
        defer { first.server.shutdown() }
        let taken = first.server.boundAddress!
        let second = HTTPServer(configuration: HTTPServerConfiguration(address: taken), logger: .disabled) { _ in
            .text("")
        }
        #expect(throws: GatehouseError.self) { try second.start() }
        do {
            try second.start()
        } catch {
            #expect(error.code == .io)
            #expect(error.message.contains(taken.description))
        }
    }
}
