-- wrk script: POST a JSON login for the login-flood user. It has an account of its own, so
-- the per-user session cap never ends the sessions the other rows measure with.
wrk.method = "POST"
wrk.body = '{"username":"flood","password":"Juniper-Canyon-Ribbon-58"}'
wrk.headers["Content-Type"] = "application/json"
