-- wrk script: POST a JSON login with the benchmark user's credentials.
wrk.method = "POST"
wrk.body = '{"username":"bench","password":"BenchPass123!"}'
wrk.headers["Content-Type"] = "application/json"
