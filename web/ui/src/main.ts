// The page's entry point: take the token, then show the workspace.

import { App } from './app';
import { h } from './dom';
import './style.css';
import { identityOf, takeToken } from './token';

const root = document.getElementById('app')!;
const token = takeToken(location, sessionStorage, history);
if (token) {
  new App(identityOf(token)).mount(root);
} else {
  root.replaceChildren(
    h(
      'div',
      { class: 'no-token' },
      h('h1', {}, 'conman'),
      h(
        'p',
        {},
        'This page needs an access token. Open the address the daemon printed when it started (it ends in #token=…), or mint one with `conman token --user NAME`.',
      ),
    ),
  );
}
