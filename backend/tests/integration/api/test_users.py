import pytest

from tests.helpers.factories import build_user_create_payload


@pytest.mark.integration
async def test_register_login_and_fetch_me(client, db_session):
    # Register
    payload = build_user_create_payload(email="alice@example.com", username="alice")
    register_response = await client.post("/api/v1/users/", json=payload)
    assert register_response.status_code == 201
    user_data = register_response.json()
    assert user_data["username"] == "alice"

    # Log in - sets session cookie on the client
    login_response = await client.post(
        "/api/v1/auth/login",
        json={"username": "alice", "password": payload["password"]},
    )
    assert login_response.status_code == 200

    # Authenticated request reuses the cookie automatically
    me_response = await client.get("/api/v1/users/me/")
    assert me_response.status_code == 200
    assert me_response.json()["username"] == "alice"
