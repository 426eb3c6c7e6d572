// Views for the parts of the API beyond batches. Each is listed here when the gateway serves it.
export const extraRoutes = [];
export const extraNav = [];
