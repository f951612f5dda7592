use redis_cached::redis_cached;

struct Order {
    id: u64,
}

#[redis_cached(key = "order:<order.>", ttl = 60)]
async fn get_order(order: Order) -> u64 {
    order.id
}

fn main() {
    let _ = get_order(Order { id: 1 });
}
