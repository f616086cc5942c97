//! The customer-service data the tools read and write, behind a trait.
//!
//! [`MemoryCustomerStore`] is seeded with a few demo customers. Tickets are
//! really stored: a ticket created by one call is visible to later calls
//! (in `get_customer_info` and in `get_recent_customers`' ordering).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;

/// A back end failed.
#[derive(Debug, thiserror::Error)]
#[error("customer store unavailable: {0}")]
pub struct StoreError(pub String);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub tier: &'static str,
    pub status: &'static str,
    /// Unix seconds of the last account activity (creation, ticket, ...).
    pub last_activity: i64,
    /// Orders activity within the same second (not part of the API).
    #[serde(skip)]
    activity_seq: i64,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    pub id: String,
    pub customer_id: String,
    pub subject: String,
    pub description: String,
    pub priority: Priority,
    pub status: &'static str,
    /// Unix seconds.
    pub created_at: i64,
    /// The client that created it (from the access token).
    pub created_by: String,
    /// Creation order (pages of tickets resume after one); not part of the API.
    #[serde(skip)]
    pub seq: i64,
}

/// One page of a customer's tickets, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketPage {
    pub tickets: Vec<Ticket>,
    /// Whether older tickets follow the last one of this page.
    pub more: bool,
}

/// A customer's place in the "most recent activity first" order (the
/// keyset a `get_recent_customers` cursor carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentKey {
    pub last_activity: i64,
    pub activity_seq: i64,
    pub id: String,
}

impl RecentKey {
    /// The position of `c`.
    pub fn of(c: &Customer) -> Self {
        Self {
            last_activity: c.last_activity,
            activity_seq: c.activity_seq,
            id: c.id.clone(),
        }
    }

    /// Most recent first; the id breaks ties.
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (b.last_activity, b.activity_seq)
            .cmp(&(a.last_activity, a.activity_seq))
            .then_with(|| a.id.cmp(&b.id))
    }
}

/// One page of customers.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerPage {
    pub customers: Vec<Customer>,
    /// Whether customers follow the last one of this page.
    pub more: bool,
}

/// A ticket to create.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub customer_id: String,
    pub subject: String,
    pub description: String,
    pub priority: Priority,
    pub created_by: String,
}

#[async_trait]
pub trait CustomerStore: Send + Sync {
    async fn customer(&self, id: &str) -> Result<Option<Customer>, StoreError>;
    /// At most `limit` customers by most recent activity first, starting
    /// after the customer whose position is `after` when given.
    async fn recent_customers(
        &self,
        after: Option<&RecentKey>,
        limit: usize,
    ) -> Result<CustomerPage, StoreError>;
    /// Tickets of one customer, newest first.
    async fn tickets_for(&self, customer_id: &str) -> Result<Vec<Ticket>, StoreError>;
    /// At most `limit` tickets of one customer, newest first, starting after
    /// (older than) the ticket numbered `before` when given.
    async fn ticket_page(
        &self,
        customer_id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<TicketPage, StoreError>;
    /// Stores a ticket; `Ok(None)` when the customer does not exist.
    async fn create_ticket(&self, ticket: NewTicket) -> Result<Option<Ticket>, StoreError>;
}

#[derive(Default)]
struct Data {
    customers: BTreeMap<String, Customer>,
    tickets: Vec<Ticket>,
    /// Ticket counter; also orders activity within the same second.
    seq: i64,
}

/// In-memory store, seeded with demo data.
pub struct MemoryCustomerStore {
    data: Mutex<Data>,
}

/// Tickets kept in memory; the oldest are dropped beyond this.
pub const MAX_TICKETS: usize = 10_000;

/// Demo customers (id, name, email, tier, status, days since last activity).
const SEED: &[(&str, &str, &str, &str, &str, i64)] = &[
    (
        "12345",
        "Alice Johnson",
        "alice.johnson@example.com",
        "gold",
        "active",
        1,
    ),
    (
        "67890",
        "Bob Martinez",
        "bob.martinez@example.com",
        "silver",
        "active",
        3,
    ),
    (
        "ACME001",
        "Acme Corporation",
        "billing@acme.example",
        "platinum",
        "active",
        2,
    ),
    (
        "GLOBEX02",
        "Globex Ltd",
        "accounts@globex.example",
        "gold",
        "active",
        5,
    ),
    (
        "INITECH03",
        "Initech",
        "it@initech.example",
        "bronze",
        "suspended",
        30,
    ),
    (
        "HOOLI04",
        "Hooli",
        "support@hooli.example",
        "silver",
        "active",
        8,
    ),
    (
        "STARK05",
        "Stark Industries",
        "tony@stark.example",
        "platinum",
        "active",
        0,
    ),
    (
        "WAYNE06",
        "Wayne Enterprises",
        "lucius@wayne.example",
        "gold",
        "active",
        13,
    ),
];

impl MemoryCustomerStore {
    /// A store holding the demo customers and no tickets.
    pub fn seeded() -> Self {
        let now = auth::now_unix();
        let customers = SEED
            .iter()
            .map(|&(id, name, email, tier, status, days)| {
                let c = Customer {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    email: email.to_owned(),
                    tier,
                    status,
                    last_activity: now - days * 86_400,
                    activity_seq: 0,
                };
                (id.to_owned(), c)
            })
            .collect();
        Self {
            data: Mutex::new(Data {
                customers,
                tickets: Vec::new(),
                seq: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        // Nothing panics while the lock is held, so poisoning cannot leave bad data.
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl CustomerStore for MemoryCustomerStore {
    async fn customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        Ok(self.lock().customers.get(id).cloned())
    }

    async fn recent_customers(
        &self,
        after: Option<&RecentKey>,
        limit: usize,
    ) -> Result<CustomerPage, StoreError> {
        let data = self.lock();
        let mut all: Vec<(RecentKey, &Customer)> = data
            .customers
            .values()
            .map(|c| (RecentKey::of(c), c))
            .filter(|(k, _)| {
                after.is_none_or(|a| RecentKey::order(a, k) == std::cmp::Ordering::Less)
            })
            .collect();
        all.sort_by(|(a, _), (b, _)| RecentKey::order(a, b));
        let more = all.len() > limit;
        let customers = all
            .into_iter()
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect();
        Ok(CustomerPage { customers, more })
    }

    async fn tickets_for(&self, customer_id: &str) -> Result<Vec<Ticket>, StoreError> {
        let data = self.lock();
        Ok(data
            .tickets
            .iter()
            .rev()
            .filter(|t| t.customer_id == customer_id)
            .cloned()
            .collect())
    }

    async fn ticket_page(
        &self,
        customer_id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<TicketPage, StoreError> {
        let data = self.lock();
        let mut older = data
            .tickets
            .iter()
            .rev()
            .filter(|t| t.customer_id == customer_id && before.is_none_or(|b| t.seq < b));
        let tickets: Vec<Ticket> = older.by_ref().take(limit).cloned().collect();
        let more = older.next().is_some();
        Ok(TicketPage { tickets, more })
    }

    async fn create_ticket(&self, new: NewTicket) -> Result<Option<Ticket>, StoreError> {
        let mut data = self.lock();
        if !data.customers.contains_key(&new.customer_id) {
            return Ok(None);
        }
        let now = auth::now_unix();
        data.seq += 1;
        let seq = data.seq;
        if let Some(customer) = data.customers.get_mut(&new.customer_id) {
            customer.last_activity = customer.last_activity.max(now);
            customer.activity_seq = seq;
        }
        let ticket = Ticket {
            id: format!("TKT-{seq:06}"),
            customer_id: new.customer_id,
            subject: new.subject,
            description: new.description,
            priority: new.priority,
            status: "open",
            created_at: now,
            created_by: new.created_by,
            seq,
        };
        if data.tickets.len() >= MAX_TICKETS {
            data.tickets.remove(0);
        }
        data.tickets.push(ticket.clone());
        Ok(Some(ticket))
    }
}
