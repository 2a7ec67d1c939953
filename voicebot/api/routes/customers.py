"""``GET /api/customers/{customer_id}/contacts``: a customer's last contacts on every channel.

The screen pop shows them from the packet (``packet.history``, taken when the bot handed
off); this is the same list read now, for a desktop or CRM that wants it fresh.

Who may read whom: supervisors, admins and the API token every customer; an agent only a
customer one of whose contacts was offered to or handled by them (the rule of the handoff
packets: an agent sees the history of the people they talk to, not a directory of
customers). Anything else is 404, as for a customer with no contacts at all, so ids cannot
be probed. Every read is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import or_, select

from voicebot.access.audit import audit
from voicebot.access.sessions import Principal
from voicebot.api.deps import Db, User, client_ip
from voicebot.channels.identity import is_customer_id
from voicebot.history.contacts import MAX_CONTACTS, last_contacts
from voicebot.store.db import Database
from voicebot.store.models import Call, Offer, QueueEntry

router = APIRouter(prefix="/api/customers", tags=["contact centre"])


async def _may_read(db: Database, who: Principal, customer_id: str) -> bool:
    if who.is_supervisor:
        return True
    async with db.session() as session:
        mine = await session.scalar(
            select(QueueEntry.id)
            .join(Call, Call.id == QueueEntry.call_id)
            .outerjoin(Offer, Offer.entry_id == QueueEntry.id)
            .where(
                Call.customer_id == customer_id,
                or_(QueueEntry.agent_id == who.id, Offer.agent_id == who.id),
            )
            .limit(1)
        )
    return mine is not None


@router.get("/{customer_id}/contacts")
async def customer_contacts(
    customer_id: str,
    request: Request,
    db: Db,
    who: User,
    limit: int = Query(default=5, ge=1, le=MAX_CONTACTS),
) -> dict[str, Any]:
    """The customer's contacts, newest first: when, channel, intent, outcome, summary."""
    if not is_customer_id(customer_id):
        raise HTTPException(
            422,
            detail="a customer id is tel:+<E.164 number>, email:<address> or site:<id>",
        )
    allowed = await _may_read(db, who, customer_id)
    await audit(
        db,
        "view_history",
        actor=who.username,
        actor_id=who.id,
        target=customer_id,
        success=allowed,
        ip=client_ip(request),
    )
    if not allowed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such customer")
    contacts = await last_contacts(db, customer_id, limit=limit)
    return {
        "customer_id": customer_id,
        "contacts": [contact.model_dump(mode="json") for contact in contacts],
    }
