// Reading Prometheus text exposition back: the demo watches its nodes through it, and so do tests.

/** The numbers of a /metrics page, by series (`name` or `name{labels}`). */
export type Scrape = Map<string, number>;

export function parsePrometheusText(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const cut = line.lastIndexOf(" ");
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}
