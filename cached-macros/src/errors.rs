//! Collects errors so that one build reports every mistake it can find, not only the first.

/// The errors met so far, merged with [`syn::Error::combine`] in the order they were found.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Keeps `result`'s error, if any.
    pub(crate) fn check(&mut self, result: syn::Result<()>) {
        if let Err(error) = result {
            self.push(error);
        }
    }

    /// `Ok(())` if nothing was pushed, or all the errors as one.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Both values, or the errors of both: `join(a, b)?` reports `b`'s mistakes even when `a`
/// has some.
pub(crate) fn join<A, B>(a: syn::Result<A>, b: syn::Result<B>) -> syn::Result<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(mut first), Err(second)) => {
            first.combine(second);
            Err(first)
        }
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
    }
}

/// Every value, or the errors of all of them.
pub(crate) fn join_all<T>(
    results: impl IntoIterator<Item = syn::Result<T>>,
) -> syn::Result<Vec<T>> {
    let mut errors = Errors::default();
    let values = results
        .into_iter()
        .filter_map(|result| result.map_err(|error| errors.push(error)).ok())
        .collect();
    errors.finish().map(|()| values)
}
