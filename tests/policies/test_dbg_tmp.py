from tests.policies.test_acceptance import *  # noqa
def test_dbg(app, client, defaults, client_user):
    sign_in(client, client_user)
    token = csrf_from(_accept_page(client))
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint
        if endpoint in PUBLIC_ENDPOINTS or endpoint in ALLOWED_WHILE_PENDING:
            continue
        url = rule.build(_example_args(rule), append_unknown=False)[1]
        if "GET" in rule.methods:
            response = client.get(url)
        else:
            response = client.post(url, data={"csrf_token": token})
        print(endpoint, url, response.status_code, response.location, response.data[:200] if response.status_code==400 else "")
