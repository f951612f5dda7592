//! The product of the benches: a product page's data, about 1 KiB of JSON.

use serde::{Deserialize, Serialize};

/// A product page's data: about 1 KiB of JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Product {
    id: u64,
    sku: String,
    name: String,
    description: String,
    price_cents: u64,
    currency: String,
    in_stock: bool,
    stock: u32,
    rating: f64,
    review_count: u32,
    tags: Vec<String>,
    categories: Vec<String>,
    images: Vec<Image>,
    dimensions: Dimensions,
    seller: Seller,
    created_at: String,
    updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    url: String,
    width: u32,
    height: u32,
    alt: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dimensions {
    width_mm: u32,
    height_mm: u32,
    depth_mm: u32,
    weight_g: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seller {
    id: u64,
    name: String,
    country: String,
    verified: bool,
}

pub fn product(id: u64) -> Product {
    Product {
        id,
        sku: format!("SKU-{id:08}"),
        name: "Stainless steel insulated water bottle, 750 ml".into(),
        description: "Double-walled vacuum insulation keeps drinks cold for 24 hours and hot \
                      for 12. Leak-proof lid with a carry loop; fits most cup holders. \
                      Dishwasher safe."
            .into(),
        price_cents: 2499,
        currency: "EUR".into(),
        in_stock: true,
        stock: 312,
        rating: 4.6,
        review_count: 1287,
        tags: ["outdoor", "hiking", "kitchen", "bpa-free", "gift"]
            .map(String::from)
            .into(),
        categories: ["Sports & Outdoors", "Water Bottles"]
            .map(String::from)
            .into(),
        images: (1..=3)
            .map(|n| Image {
                url: format!("https://cdn.example.com/products/{id}/images/{n}.jpg"),
                width: 1200,
                height: 1200,
                alt: format!("Water bottle, view {n}"),
            })
            .collect(),
        dimensions: Dimensions {
            width_mm: 75,
            height_mm: 265,
            depth_mm: 75,
            weight_g: 340,
        },
        seller: Seller {
            id: 90210,
            name: "Northwind Outfitters GmbH".into(),
            country: "DE".into(),
            verified: true,
        },
        created_at: "2024-03-18T09:12:44Z".into(),
        updated_at: "2025-11-02T16:40:05Z".into(),
    }
}
