from ats_app.engine.tenants.passwords import hash_password, password_problem, verify_password


def test_hash_is_argon2id_salted_and_not_the_password() -> None:
    h1 = hash_password("correct horse battery")
    h2 = hash_password("correct horse battery")
    assert h1.startswith("$argon2id$")
    assert "correct horse battery" not in h1
    assert h1 != h2  # a fresh salt every time


def test_verify_accepts_right_and_rejects_wrong_password() -> None:
    h = hash_password("correct horse battery")
    assert verify_password(h, "correct horse battery")
    assert not verify_password(h, "correct horse batterY")
    assert not verify_password("not-a-hash", "correct horse battery")


def test_password_rules_name_the_problem() -> None:
    assert "at least 8" in (password_problem("short") or "")
    assert "spaces" in (password_problem(" leading-space") or "")
    assert password_problem("long enough pass") is None
