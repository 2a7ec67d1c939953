"""``GET /api/customers/{id}/contacts`` on a real server: the screen pop's history, by role."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update

from tests.queues.packets import make_packet
from tests.security.conftest import Start
from voicebot.store.models import Agent, Call, QueueEntry

CUSTOMER = "tel:+447700900123"  # make_packet's caller


def test_agents_read_the_history_of_their_own_customers(serve: Start) -> None:
    server = serve(knowledge=False)
    with server.token_client() as token:
        response = token.post("/api/handoffs", json=make_packet("general").model_dump(mode="json"))
        assert response.status_code == 201, response.text
        entry_id = response.json()["entry_id"]
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

    async def rows(db: Any) -> None:
        async with db.transaction() as session:
            agent_id = await session.scalar(
                Agent.__table__.select()
                .with_only_columns(Agent.id)
                .where(Agent.username == "agent")
            )
            await session.execute(
                update(QueueEntry).where(QueueEntry.id == entry_id).values(agent_id=agent_id)
            )
            session.add(
                Call(
                    id="chat-yesterday",
                    started_at=yesterday,
                    channel="chat",
                    customer_id=CUSTOMER,
                    intent="pay_bill",
                    outcome="ended",
                )
            )

    server.run(rows)
    url = f"/api/customers/{CUSTOMER}/contacts"
    agent = server.signed_in("agent")
    try:
        response = agent.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["customer_id"] == CUSTOMER
        contacts = body["contacts"]
        # newest first: the handed-off call (now), then yesterday's chat
        assert len(contacts) == 2
        assert contacts[-1]["call_id"] == "chat-yesterday"
        assert contacts[-1]["intent"] == "pay_bill"
        assert contacts[0]["summary"] == "Ann wants to know why her bill went up."
        assert agent.get(url, params={"limit": 1}).json()["contacts"][0]["call_id"] != (
            "chat-yesterday"
        )
        assert agent.get("/api/customers/not-an-id/contacts").status_code == 422
        # someone this agent never talked to: the same answer as nobody
        assert agent.get("/api/customers/tel:+447700900999/contacts").status_code == 404
    finally:
        agent.close()
    others = {who: server.signed_in(who) for who in ("agent2", "supervisor", "admin")}
    try:
        assert others["agent2"].get(url).status_code == 404
        assert len(others["supervisor"].get(url).json()["contacts"]) == 2
        audit = others["admin"].get("/api/audit", params={"action": "view_history"}).json()
    finally:
        for client in others.values():
            client.close()
    views = [
        e
        for e in (audit if isinstance(audit, list) else audit.get("events", []))
        if e.get("action") == "view_history"
    ]
    assert {(e["actor"], e["success"]) for e in views} >= {("agent", True), ("agent2", False)}
