from tests.security.test_hostile_input import *  # noqa
def test_dbg(world):
    forms = discovered_forms(world)
    for who, f in forms.items():
        print(who, sorted(f))
    a = Actor(world, "client")
    r = a.client.get("/messages/new")
    print(r.status_code)
    html = r.get_data(as_text=True)
    import re
    print(re.findall(r"<form[^>]*>", html))
    print([ (f.action, [x.name for x in f.fields]) for f in forms_in(html, "/messages/new")])
