"""One customer history across channels: a customer's earlier contacts, by customer id."""
