/**
 * Where each layer of a legacy `docker save` (moby 20.10, balenaEngine) sits in the image's rootfs chain, learnt
 * from the v1 `<id>/json` files before their `<id>/layer.tar`: a layer with no `parent` is the first, a layer's child
 * sits one above it. The save names layer folders by v1 ids in lexical order, so a layer's position is known only
 * once a chain from a known layer reaches it; unknown means the caller must hash the layer to tell what it is.
 * Knowing it lets apply-delta skip layers it does not need without writing them to disk.
 */
export class SaveLayerDepths {
  private readonly depths = new Map<string, number>();
  private readonly parents = new Map<string, string>();

  /** Records the v1 json of folder `id` (its text; a json that does not parse teaches nothing). */
  note(id: string, text: string): void {
    let parent: unknown;
    try {
      parent = (JSON.parse(text) as { parent?: unknown }).parent;
    } catch {
      return;
    }
    if (typeof parent === 'string' && parent !== '') {
      this.parents.set(id, parent);
      const above = this.depths.get(parent);
      if (above !== undefined) this.learn(id, above + 1);
      else if (this.depths.has(id)) this.learn(parent, this.depths.get(id)! - 1);
    } else {
      this.learn(id, 0);
    }
  }

  /** The folder's position in the chain (0: the first layer), or undefined while unknown. */
  depthOf(id: string): number | undefined {
    return this.depths.get(id);
  }

  private learn(id: string, depth: number): void {
    if (this.depths.has(id) || depth < 0) return;
    this.depths.set(id, depth);
    const parent = this.parents.get(id);
    if (parent !== undefined) this.learn(parent, depth - 1);
    for (const [child, of] of this.parents) if (of === id) this.learn(child, depth + 1);
  }
}
