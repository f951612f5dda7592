//! Names bound inside parameter patterns, and field paths into parameters.
#![deny(warnings)]

use redis_cached::redis_cached;

struct Wrapper<T>(T);

struct Point {
    x: i32,
    y: i32,
}

struct Order {
    id: u64,
    customer: Customer,
    lines: (u32, String),
}

struct Customer {
    id: u64,
}

#[redis_cached(key = "wrapped:<id>")]
async fn wrapped(Wrapper(id): Wrapper<u64>) -> u64 {
    id
}

#[redis_cached(key = "tuple:<a>:<b>")]
async fn tuple((a, b): (u64, String)) -> String {
    format!("{a}{b}")
}

#[redis_cached(key = "point:<x>:<why>")]
async fn point(Point { x, y: why }: Point) -> i32 {
    x + why
}

#[redis_cached(key = "nested:<inner>:<whole>")]
async fn nested(whole @ Wrapper(inner): Wrapper<u8>, _unused: ()) -> u8 {
    let Wrapper(again) = whole;
    inner + again
}

#[redis_cached(key = "reference:<id>:<name>")]
async fn reference(&id: &u64, mut name: String) -> String {
    name.push_str(&id.to_string());
    name
}

#[redis_cached(key = "slice:<first>:<last>")]
async fn slice([first, .., last]: [u8; 4]) -> u8 {
    first + last
}

#[redis_cached(key = "order:<order.id>:<order.customer.id>:<order.lines.0>")]
async fn order(order: Order) -> String {
    order.lines.1
}

impl redis_cached::KeyPart for Wrapper<u8> {
    fn write_key(&self, out: &mut String) {
        self.0.write_key(out);
    }
}

fn main() {
    let _ = wrapped(Wrapper(1));
    let _ = tuple((1, String::new()));
    let _ = point(Point { x: 1, y: 2 });
    let _ = nested(Wrapper(1), ());
    let _ = reference(&1, String::new());
    let _ = slice([1, 2, 3, 4]);
    let _ = order(Order {
        id: 1,
        customer: Customer { id: 2 },
        lines: (3, String::new()),
    });
}
