//! A user type rendered into keys through its own `KeyPart` impl.
#![deny(warnings)]

use redis_cached::{KeyPart, redis_cached, write_escaped};

#[derive(Clone, Copy)]
struct UserId(u64);

impl KeyPart for UserId {
    fn write_key(&self, out: &mut String) {
        self.0.write_key(out);
    }
}

struct Slug(String);

impl KeyPart for Slug {
    fn write_key(&self, out: &mut String) {
        write_escaped(&self.0, out);
    }
}

struct Page {
    slug: Slug,
    number: u32,
}

#[redis_cached(key = "user:<id>")]
async fn get_user(id: UserId) -> u64 {
    id.0
}

#[redis_cached(key = "page:<page.slug>:<page.number>")]
async fn get_page(page: &Page) -> String {
    page.slug.0.clone()
}

#[redis_cached(key = "by-ref:<id>:<slug>")]
async fn by_ref(id: &UserId, slug: Box<Slug>) -> u64 {
    let _ = slug;
    id.0
}

fn main() {
    let _ = get_user(UserId(1));
    let page = Page {
        slug: Slug("a:b".into()),
        number: 1,
    };
    let _ = get_page(&page);
    let _ = by_ref(&UserId(1), Box::new(Slug(String::new())));
}
