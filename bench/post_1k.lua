-- wrk script for the "echo" scenario: POST a 1 KiB body to /echo (examples/hello.py echoes it).
-- wrk adds the Content-Length header itself when wrk.body is set.
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
